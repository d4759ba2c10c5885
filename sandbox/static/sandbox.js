// The sandbox page: renders what the bot sent to the Slack stand-in and sends what a Slack client would.
// Plain JS, no framework. State comes from GET /api/state; /api/events (SSE) says when to fetch it again.
"use strict";

const S = {
  data: null,
  viewer: localStorage.getItem("sandbox.viewer") || "",
  channel: decodeURIComponent(location.hash.slice(1)) || "",
  fetching: false,
  again: false,
  modalKey: null,
  modalErrors: {},
  dismissed: new Set(),
  actions: new Map(), // button key -> {element, block_id}
  lastChannelRendered: "",
};

const HOME = "HOME"; // the bot's App Home tab, drawn from the view it published with views.publish
const $ = (sel) => document.querySelector(sel);
const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ESC[c]);
const unent = (s) => String(s).replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");

const EMOJI = {
  pushpin: "📌", white_check_mark: "✅", heavy_check_mark: "✔️", warning: "⚠️", rotating_light: "🚨",
  pager: "📟", fire: "🔥", eyes: "👀", x: "❌", tada: "🎉", memo: "📝", hourglass: "⏳",
  hourglass_flowing_sand: "⏳", red_circle: "🔴", large_green_circle: "🟢", large_yellow_circle: "🟡",
  mega: "📣", loudspeaker: "📢", stethoscope: "🩺", arrow_up: "⬆️", repeat: "🔁", wave: "👋",
  alarm_clock: "⏰", pizza: "🍕", thumbsup: "👍", "+1": "👍", ticket: "🎫", bust_in_silhouette: "👤",
  exclamation: "❗", information_source: "ℹ️", link: "🔗", clipboard: "📋", spiral_note_pad: "🗒️",
};
const emoji = (name) => EMOJI[name] || `:${name}:`;

// ---- helpers -------------------------------------------------------------------------------------------

function user(id) {
  return (S.data && S.data.users.find((u) => u.id === id)) || null;
}
function displayName(id) {
  if (S.data && id === S.data.bot_user_id) return "Incident Bot";
  const u = user(id);
  return u ? u.real_name || u.name : id;
}
function channel(id) {
  return (S.data && S.data.channels.find((c) => c.id === id)) || null;
}
function channelLabel(c) {
  return c.kind === "im" ? c.name : c.name;
}
function initials(name) {
  const parts = String(name).replace(/\(.*\)/, "").trim().split(/\s+/);
  return ((parts[0] || "?")[0] + (parts.length > 1 ? parts[parts.length - 1][0] : "")).toUpperCase();
}
function colour(id) {
  let h = 0;
  for (const ch of String(id)) h = (h * 31 + ch.charCodeAt(0)) % 360;
  return `hsl(${h}, 45%, 42%)`;
}
function time(ts) {
  return new Date(parseFloat(ts) * 1000).toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
}
function toast(text) {
  const el = document.createElement("div");
  el.className = "toast";
  el.textContent = text;
  document.body.appendChild(el);
  setTimeout(() => el.remove(), 3500);
}

// ---- Slack mrkdwn -> HTML ------------------------------------------------------------------------------

function special(inner) {
  const [target, label] = inner.split("|", 2);
  if (target.startsWith("@")) {
    const id = target.slice(1);
    const me = S.data && id === S.data.viewer ? " me" : "";
    return `<span class="mention${me}">@${esc(user(id) ? displayName(id) : label || id)}</span>`;
  }
  if (target.startsWith("#")) {
    const c = channel(target.slice(1));
    const name = c ? c.name : label || target.slice(1);
    return `<a href="#" class="mention" data-goto="${esc(target.slice(1))}">#${esc(name)}</a>`;
  }
  if (target.startsWith("!")) {
    if (label) return esc(label.replace(/^@?/, "@"));
    return `<span class="mention">@${esc(target.slice(1).split("^")[0])}</span>`;
  }
  if (/^(https?:|mailto:)/.test(target)) {
    return `<a href="${esc(unent(target))}" target="_blank" rel="noopener">${esc(unent(label || target))}</a>`;
  }
  return esc(`<${unent(inner)}>`); // not Slack markup: show it as typed
}

function mrkdwn(src) {
  if (src == null) return "";
  const slots = [];
  const keep = (html) => `\u0000${slots.push(html) - 1}\u0000`;
  let s = String(src);
  s = s.replace(/```([\s\S]*?)```/g, (_, code) => keep(`<pre class="code">${esc(unent(code.replace(/^\n/, "")))}</pre>`));
  s = s.replace(/`([^`\n]+)`/g, (_, code) => keep(`<code>${esc(unent(code))}</code>`));
  s = s.replace(/<([^<>\s][^<>]*)>/g, (_, inner) => keep(special(inner)));
  s = esc(unent(s));
  const open = "(^|[\\s(\"'\\u0000])";
  const close = "(?=$|[\\s.,;:!?)\"'\\u0000])";
  s = s.replace(new RegExp(`${open}\\*(?!\\s)([^*\\n]+?)\\*${close}`, "g"), "$1<b>$2</b>");
  s = s.replace(new RegExp(`${open}_(?!\\s)([^_\\n]+?)_${close}`, "g"), "$1<i>$2</i>");
  s = s.replace(new RegExp(`${open}~(?!\\s)([^~\\n]+?)~${close}`, "g"), "$1<s>$2</s>");
  s = s.replace(/:([a-z0-9_+-]+):/g, (m, name) => (EMOJI[name] ? EMOJI[name] : m));
  s = s
    .split("\n")
    .map((line) => (line.startsWith("&gt; ") ? `<blockquote>${line.slice(5)}</blockquote>` : line))
    .join("<br>")
    .replace(/<\/blockquote><br>/g, "</blockquote>");
  return s.replace(/\u0000(\d+)\u0000/g, (_, i) => slots[Number(i)]);
}

function textObj(t) {
  if (!t) return "";
  if (t.type === "mrkdwn") return mrkdwn(t.text);
  return esc(t.text).replace(/:([a-z0-9_+-]+):/g, (m, n) => (EMOJI[n] ? EMOJI[n] : m)).replace(/\n/g, "<br>");
}

// ---- Block Kit -> HTML ---------------------------------------------------------------------------------

function actionKey(element, blockId) {
  const key = `a${S.actions.size + 1}`;
  S.actions.set(key, { element, block_id: blockId || "" });
  return key;
}

function renderElement(el, blockId) {
  const key = actionKey(el, blockId);
  if (el.type === "button") {
    const style = el.style ? ` ${esc(el.style)}` : "";
    return `<button type="button" class="btn${style}" data-act="${key}">${textObj(el.text)}</button>`;
  }
  if (el.type === "static_select" || el.type === "overflow") {
    const opts = (el.options || []).map((o, i) => `<option value="${i}">${esc(o.text.text)}</option>`).join("");
    const ph = el.placeholder ? el.placeholder.text : el.type === "overflow" ? "⋯" : "Select…";
    return `<select class="bk-select" data-act="${key}"><option value="" selected disabled>${esc(ph)}</option>${opts}</select>`;
  }
  if (el.type === "users_select") {
    const opts = S.data.roster.map((id) => `<option value="${esc(id)}">${esc(displayName(id))}</option>`).join("");
    return `<select class="bk-select" data-act="${key}"><option value="" selected disabled>Select a person…</option>${opts}</select>`;
  }
  if (el.type === "image") return `<img src="${esc(el.image_url)}" alt="${esc(el.alt_text)}" width="72">`;
  return `<span class="muted">[${esc(el.type)}]</span>`;
}

function richText(block) {
  const inline = (els) =>
    (els || [])
      .map((e) => {
        if (e.type === "text") {
          let t = esc(e.text).replace(/\n/g, "<br>");
          const st = e.style || {};
          if (st.code) t = `<code>${t}</code>`;
          if (st.bold) t = `<b>${t}</b>`;
          if (st.italic) t = `<i>${t}</i>`;
          if (st.strike) t = `<s>${t}</s>`;
          return t;
        }
        if (e.type === "link") return special(`${e.url}|${e.text || e.url}`);
        if (e.type === "user") return special(`@${e.user_id}`);
        if (e.type === "channel") return special(`#${e.channel_id}`);
        if (e.type === "emoji") return emoji(e.name);
        return "";
      })
      .join("");
  return (block.elements || [])
    .map((el) => {
      if (el.type === "rich_text_section") return `<div>${inline(el.elements)}</div>`;
      if (el.type === "rich_text_preformatted") return `<pre class="code">${inline(el.elements)}</pre>`;
      if (el.type === "rich_text_quote") return `<blockquote>${inline(el.elements)}</blockquote>`;
      if (el.type === "rich_text_list") {
        const tag = el.style === "ordered" ? "ol" : "ul";
        return `<${tag}>${(el.elements || []).map((i) => `<li>${inline(i.elements)}</li>`).join("")}</${tag}>`;
      }
      return "";
    })
    .join("");
}

function renderBlocks(blocks) {
  return (blocks || [])
    .map((b) => {
      switch (b.type) {
        case "header":
          return `<div class="bk-header">${textObj(b.text)}</div>`;
        case "section": {
          const fields = b.fields
            ? `<div class="bk-fields">${b.fields.map((f) => `<div>${textObj(f)}</div>`).join("")}</div>`
            : "";
          const acc = b.accessory ? `<div>${renderElement(b.accessory, b.block_id)}</div>` : "";
          return `<div class="bk-section"><div class="bk-section-main">${textObj(b.text)}${fields}</div>${acc}</div>`;
        }
        case "context":
          return `<div class="bk-context">${(b.elements || [])
            .map((e) => (e.type === "image" ? `<img src="${esc(e.image_url)}" alt="${esc(e.alt_text)}">` : `<span>${textObj(e)}</span>`))
            .join("")}</div>`;
        case "divider":
          return `<hr class="bk-divider">`;
        case "actions":
          return `<div class="bk-actions">${(b.elements || []).map((e) => renderElement(e, b.block_id)).join("")}</div>`;
        case "image":
          return `<div class="bk-image">${b.title ? textObj(b.title) : ""}<img src="${esc(b.image_url)}" alt="${esc(b.alt_text)}"></div>`;
        case "rich_text":
          return `<div class="bk-rich">${richText(b)}</div>`;
        case "markdown":
          return `<div>${mrkdwn(String(b.text || "").replace(/\*\*(.+?)\*\*/g, "*$1*"))}</div>`;
        default:
          return `<div class="bk-context">[${esc(b.type)} block]</div>`;
      }
    })
    .join("");
}

function renderAttachments(atts) {
  return (atts || [])
    .map((a) => {
      const colours = { good: "#2eb67d", warning: "#ecb22e", danger: "#e01e5a" };
      const bar = colours[a.color] || (a.color ? (a.color.startsWith("#") ? a.color : `#${a.color}`) : "#ddd");
      const fields = (a.fields || []).map((f) => `<div><b>${esc(f.title)}</b><br>${mrkdwn(f.value)}</div>`).join("");
      return `<div class="attachment" style="border-left-color:${esc(bar)}">${a.pretext ? mrkdwn(a.pretext) : ""}${
        a.title ? `<div><b>${esc(a.title)}</b></div>` : ""
      }${a.text ? mrkdwn(a.text) : ""}${fields ? `<div class="bk-fields">${fields}</div>` : ""}${renderBlocks(a.blocks)}</div>`;
    })
    .join("");
}

// ---- messages ------------------------------------------------------------------------------------------

function renderMessage(m, prev, replies) {
  const isBot = m.user === S.data.bot_user_id;
  const name = displayName(m.user);
  const cont =
    prev && prev.user === m.user && !m.pinned && !prev.pinned && !m.ephemeral && !prev.ephemeral &&
    parseFloat(m.ts) - parseFloat(prev.ts) < 300;
  const classes = ["message"];
  if (cont) classes.push("cont");
  if (m.pinned) classes.push("pinned");
  if (m.ephemeral) classes.push("ephemeral");
  const avatar = isBot
    ? `<div class="avatar bot">🚨</div>`
    : `<div class="avatar" style="background:${colour(m.user)}">${esc(initials(name))}</div>`;
  const label = m.pinned
    ? `<div class="pin-label">📌 Pinned by Incident Bot</div>`
    : m.ephemeral
      ? `<div class="eph-label">👁 Only visible to you <a class="dismiss" data-dismiss="${esc(m.eph_id || m.ts)}">Dismiss</a></div>`
      : "";
  const head = cont
    ? ""
    : `<div class="msg-head"><span class="msg-author">${esc(name)}</span>${isBot ? '<span class="app-badge">APP</span>' : ""}<span class="msg-time">${time(m.ts)}</span>${m.edited ? '<span class="edited">(edited)</span>' : ""}</div>`;
  const body = m.blocks && m.blocks.length ? renderBlocks(m.blocks) : mrkdwn(m.text);
  const edited = m.edited && cont ? ` <span class="edited">(edited)</span>` : "";
  const reactions = (m.reactions || [])
    .map((r) => {
      const mine = r.users.includes(S.data.viewer) ? " mine" : "";
      return `<button type="button" class="reaction${mine}" data-react="${esc(r.name)}" title="${esc(r.users.map(displayName).join(", "))}">${emoji(r.name)} ${r.count}</button>`;
    })
    .join("");
  const tools = m.ephemeral
    ? ""
    : `<div class="msg-tools"><button type="button" data-react="pushpin" title="React with 📌 (adds it to the incident timeline)">📌</button><button type="button" data-shortcut="add_to_timeline" title="More actions: Add to incident timeline (message shortcut)">🗂</button></div>`;
  const thread = replies && replies.length
    ? `<div class="thread">${replies.map((r, i) => renderMessage(r, replies[i - 1], null)).join("")}</div>`
    : "";
  return `<div class="${classes.join(" ")}" data-ts="${esc(m.ts)}" data-eph="${esc(m.ephemeral ? m.eph_id || "" : "")}">${label}${avatar}<div class="msg-main">${head}<div class="msg-body">${body}${edited}${renderAttachments(m.attachments)}</div>${reactions ? `<div class="reactions">${reactions}</div>` : ""}${thread}</div>${tools}</div>`;
}

function renderHome() {
  const box = $("#messages");
  const v = S.data.home;
  box.innerHTML = v
    ? `<div class="home-view">${renderBlocks(v.blocks)}</div>`
    : `<div class="intro"><h2>Home</h2>Opening the bot's Home tab…</div>`;
  box.dataset.channel = HOME;
  S.lastChannelRendered = HOME;
}

function renderMessages(c) {
  const box = $("#messages");
  const switched = S.lastChannelRendered !== c.id;
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const all = (S.data.messages[c.id] || []).filter((m) => !S.dismissed.has(m.eph_id || m.ts));
  const replies = {};
  const top = [];
  const tops = new Set(all.filter((m) => !m.thread_ts || m.thread_ts === m.ts).map((m) => m.ts));
  for (const m of all) {
    if (m.thread_ts && m.thread_ts !== m.ts && tops.has(m.thread_ts)) (replies[m.thread_ts] ||= []).push(m);
    else top.push(m);
  }
  let intro;
  if (c.kind === "im") {
    const u = user(c.user);
    intro = `<div class="intro"><h2>Incident Bot</h2>This is ${esc(displayName(c.user))}'s direct message with the bot${
      u && u.role ? ` (${esc(u.role)})` : ""
    }. Pages arrive here. You are viewing it as ${esc(displayName(c.user))}.</div>`;
  } else {
    intro = `<div class="intro"><h2>#${esc(c.name)}</h2>${c.purpose ? mrkdwn(c.purpose) : `This is the very beginning of <b>#${esc(c.name)}</b>.`}</div>`;
  }
  box.innerHTML = intro + top.map((m, i) => renderMessage(m, top[i - 1], replies[m.ts])).join("");
  box.dataset.channel = c.id;
  if (switched || atBottom) box.scrollTop = box.scrollHeight;
  S.lastChannelRendered = c.id;
}

// ---- sidebar, header, composer -------------------------------------------------------------------------

function renderSidebar() {
  const d = S.data;
  const sel = $("#viewer");
  const opts = d.roster
    .map((id) => {
      const u = user(id);
      return `<option value="${esc(id)}"${id === d.viewer ? " selected" : ""}>${esc(displayName(id))}${u && u.role ? ` · ${esc(u.role)}` : ""}</option>`;
    })
    .join("");
  if (sel.dataset.opts !== opts) {
    sel.innerHTML = opts;
    sel.dataset.opts = opts;
  }
  sel.value = d.viewer;
  const item = (c, sigil, extra = "", sub = "") => {
    const classes = ["channel", c.kind];
    if (c.id === S.channel) classes.push("active");
    if (c.unread && c.id !== S.channel) classes.push("unread");
    if (c.is_archived) classes.push("archived");
    const count = c.unread && c.id !== S.channel ? `<span class="count">${c.unread}</span>` : "";
    const name = `<span class="channel-name">${esc(channelLabel(c))}</span>`;
    const label = sub ? `<span class="stack">${name}<span class="sub">${sub}</span></span>` : name;
    return `<div class="${classes.join(" ")}" data-id="${esc(c.id)}" title="${esc(c.topic || c.name)}" role="link" tabindex="0">${sigil}${label}${extra}${count}</div>`;
  };
  const incidents = d.channels.filter((c) => c.kind === "incident").sort((a, b) => b.created - a.created);
  const chans = d.channels.filter((c) => c.kind === "channel");
  const ims = d.channels.filter((c) => c.kind === "im");
  const status = (c) => {
    // The bot's topic: "INC-… | P1 (HIGH) | NEW | summary".
    const parts = (c.topic || "").split(" | ");
    return parts.length >= 4 ? esc(`${parts[1].split(" ")[0]} · ${parts[2]} · ${parts.slice(3).join(" | ")}`) : "";
  };
  const home = `<div class="channel home${S.channel === HOME ? " active" : ""}" data-id="${HOME}" role="link" tabindex="0"><span class="sigil">🏠</span><span class="channel-name">Home</span></div>`;
  $("#channels").innerHTML =
    home +
    `<div class="section-title">🚨 Incidents</div>` +
    (incidents.length
      ? incidents.map((c) => item(c, `<span class="sigil">#</span>`, "", status(c))).join("")
      : `<div class="empty-note">none yet: try /incident declare</div>`) +
    `<div class="section-title">Channels</div>` +
    chans.map((c) => item(c, `<span class="sigil">#</span>`)).join("") +
    `<div class="section-title">Direct messages</div>` +
    ims.map((c) => item(c, `<span class="presence"></span>`, user(c.user) && user(c.user).role ? `<span class="role">${esc(user(c.user).role.split(" · ")[0])}</span>` : "")).join("");
}

function renderFactory() {
  const f = S.data.factory;
  const el = $("#factory");
  if (!f) {
    el.innerHTML = "";
    return;
  }
  const bad = { fail: "bad", down: "bad", hang: "bad", badjwt: "bad", throttle: "warn" }[f.mode] || "";
  const modes = ["healthy", "fail", "throttle", "badjwt", "hang", "down"];
  const chaos = f.chaos && f.chaos.type !== "none" ? `chaos ${esc(f.chaos.type)} since ${new Date(f.chaos.startDate).toLocaleTimeString()}` : "no chaos";
  el.innerHTML = `<div class="factory-title"><span class="dot ${bad}"></span>JWT Pizza Factory: <span id="factory-mode">${esc(f.mode)}</span></div>
    <div class="modes">${modes.map((m) => `<button type="button" data-mode="${m}" class="${m === f.mode ? "on" : ""}">${m}</button>`).join("")}</div>
    <div class="factory-detail">${chaos} · ${f.orders} orders</div>
    <div class="modes"><button type="button" id="next-handoff" title="Move the bot's clock to just after the next on-call hand-off">⏭ Next on-call hand-off</button></div>`;
}

function renderHeader(c) {
  const info = S.data.info || {};
  const fast = info.fast ? `<span class="fast" title="time_scale ${info.time_scale}">⚡ fast: 1 min → 1 s</span>` : "";
  if (c.kind === "im") {
    $("#channel-header").innerHTML = `<div class="ch-title">Incident Bot</div><div class="ch-topic">DM with ${esc(displayName(c.user))}</div><div class="ch-meta">${fast}</div>`;
    return;
  }
  const member = c.members.includes(S.data.viewer);
  const marks = ((S.data.bookmarks || {})[c.id] || [])
    .map((b) => `<a class="bookmark" href="${esc(b.link)}" target="_blank" rel="noopener">${b.emoji ? `${emoji(String(b.emoji).replace(/:/g, ""))} ` : "🔖 "}${esc(b.title)}</a>`)
    .join("");
  const archived = c.is_archived ? `<span class="archived-note">🗄 archived</span>` : "";
  $("#channel-header").innerHTML = `<div class="ch-title"># ${esc(c.name)} ${archived}</div><div class="ch-topic" title="${esc(c.topic)}">${esc(c.topic)}</div>
    <div class="ch-meta">${fast}<span title="${esc(c.members.map(displayName).join(", "))}">👤 ${c.members.length}</span>${
      member || c.is_archived ? "" : `<button type="button" class="btn" id="join">Join channel</button>`
    }</div>${marks ? `<div class="bookmarks" aria-label="Bookmarks">${marks}</div>` : ""}`;
}

function renderHints(c) {
  const hints =
    c.kind === "incident"
      ? ["/incident update", "/incident status INVESTIGATING", "/incident note ", "/incident timeline", "/incident resolve"]
      : c.kind === "im"
        ? ["/incident ack", "/incident help"]
        : ["/incident declare P1 Orders failing", "/incident declare", "/incident check", "/incident help"];
  const html = hints.map((h) => `<button type="button" class="hint" data-hint="${esc(h)}">${esc(h.trim())}</button>`).join("");
  if ($("#hints").innerHTML !== html) $("#hints").innerHTML = html;
  $("#as").textContent = `Sending as ${displayName(S.data.viewer)} in ${c.kind === "im" ? "a DM" : `#${c.name}`}`;
  $("#composer").placeholder = c.kind === "im" ? "Message Incident Bot, or /incident …" : `Message #${c.name}, or /incident …`;
}

// ---- modal ---------------------------------------------------------------------------------------------

function renderModal() {
  const root = $("#modal-root");
  const views = S.data.views;
  const top = views[views.length - 1];
  const key = top ? `${top.id}:${top.view.hash}:${JSON.stringify(S.modalErrors)}` : "";
  if (key === S.modalKey) return;
  S.modalKey = key;
  if (!top) {
    root.innerHTML = "";
    return;
  }
  const v = top.view;
  const body = (v.blocks || [])
    .map((b) => (b.type === "input" ? renderInput(b) : renderBlocks([b])))
    .join("");
  root.innerHTML = `<div class="overlay"><form class="modal" id="modal" data-view="${esc(top.id)}" novalidate>
    <div class="modal-head"><h3>${textObj(v.title)}</h3><button type="button" class="modal-close" data-close aria-label="Close">×</button></div>
    <div class="modal-body">${body}</div>
    <div class="modal-foot"><button type="button" class="btn" data-close>${v.close ? textObj(v.close) : "Cancel"}</button>${
      v.submit ? `<button type="submit" class="btn primary">${textObj(v.submit)}</button>` : ""
    }</div></form></div>`;
  const first = root.querySelector("input, textarea, select");
  if (first) first.focus();
}

function renderInput(b) {
  const el = b.element || {};
  const id = `f-${b.block_id}`;
  const err = S.modalErrors[b.block_id];
  const attrs = `id="${esc(id)}" data-type="${esc(el.type)}" data-action-id="${esc(el.action_id || "")}"`;
  let control;
  if (el.type === "plain_text_input" || el.type === "email_text_input" || el.type === "url_text_input" || el.type === "number_input") {
    const ph = el.placeholder ? ` placeholder="${esc(el.placeholder.text)}"` : "";
    const max = el.max_length ? ` maxlength="${el.max_length}"` : "";
    control = el.multiline
      ? `<textarea ${attrs}${ph}${max}>${esc(el.initial_value || "")}</textarea>`
      : `<input ${attrs}${ph}${max} value="${esc(el.initial_value || "")}">`;
  } else if (el.type === "static_select" || el.type === "radio_buttons") {
    const init = el.initial_option ? el.initial_option.value : "";
    const opts = (el.options || [])
      .map((o) => `<option value="${esc(o.value)}"${o.value === init ? " selected" : ""}>${esc(o.text.text)}</option>`)
      .join("");
    const ph = el.placeholder ? el.placeholder.text : "Select an option";
    control = `<select ${attrs}><option value=""${init ? "" : " selected"}>${esc(ph)}</option>${opts}</select>`;
  } else if (el.type === "users_select") {
    const opts = S.data.roster
      .map((uid) => `<option value="${esc(uid)}"${uid === el.initial_user ? " selected" : ""}>${esc(displayName(uid))}</option>`)
      .join("");
    control = `<select ${attrs}><option value="">Select a person</option>${opts}</select>`;
  } else if (el.type === "datepicker") {
    control = `<input type="date" ${attrs} value="${esc(el.initial_date || "")}">`;
  } else {
    control = `<input ${attrs} placeholder="(${esc(el.type)} is shown as text here)">`;
  }
  const hint = b.hint ? `<div class="hint-text">${textObj(b.hint)}</div>` : "";
  const error = err ? `<div class="error">${esc(err)}</div>` : "";
  return `<div class="field${err ? " has-error" : ""}" data-block="${esc(b.block_id)}" data-optional="${b.optional ? 1 : ""}">
    <label for="${esc(id)}">${textObj(b.label)}${b.optional ? ' <span class="optional">(optional)</span>' : ""}</label>${control}${hint}${error}</div>`;
}

function collectValues(form) {
  const values = {};
  const errors = {};
  for (const field of form.querySelectorAll(".field")) {
    const block = field.dataset.block;
    const input = field.querySelector("[data-type]");
    const type = input.dataset.type;
    const actionId = input.dataset.actionId;
    const raw = input.value;
    let v;
    if (type === "static_select" || type === "radio_buttons") {
      const opt = input.selectedOptions[0];
      v = { type, selected_option: raw ? { text: { type: "plain_text", text: opt.textContent }, value: raw } : null };
    } else if (type === "users_select") {
      v = { type, selected_user: raw || null };
    } else if (type === "datepicker") {
      v = { type, selected_date: raw || null };
    } else {
      v = { type, value: raw === "" ? null : raw };
    }
    if (!field.dataset.optional && !raw.trim()) errors[block] = "Please complete this required field.";
    values[block] = { [actionId]: v };
  }
  return { values, errors };
}

// ---- talking to the server -----------------------------------------------------------------------------

async function post(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) toast(data.error || `${path} failed (${r.status})`);
  return data;
}

async function refresh() {
  if (S.fetching) {
    S.again = true;
    return;
  }
  S.fetching = true;
  try {
    do {
      S.again = false;
      const asked = S.viewer;
      const q = new URLSearchParams({ viewer: asked, channel: S.channel });
      const r = await fetch(`/api/state?${q}`);
      // A state fetched for the person you were before you switched is stale: fetch again, do not render it
      // (rendering it would switch you back).
      if (r.ok && asked !== S.viewer) S.again = true;
      else if (r.ok) render(await r.json());
    } while (S.again);
  } catch (e) {
    setConn(false);
  } finally {
    S.fetching = false;
  }
}

function render(data) {
  S.data = data;
  S.actions = new Map();
  if (S.viewer !== data.viewer) S.viewer = data.viewer; // the server corrects an unknown or empty viewer
  if (S.channel === HOME) {
    renderSidebar();
    $("#channel-header").innerHTML = `<div class="ch-title">🏠 Incident Bot</div><div class="ch-topic">Home</div>`;
    renderHome();
    $("#hints").innerHTML = "";
    $("#as").textContent = `Viewing as ${displayName(S.data.viewer)}`;
    renderFactory();
    renderModal();
    document.body.dataset.version = String(data.version);
    return;
  }
  let c = channel(S.channel);
  if (!c) {
    c = data.channels.find((x) => x.name === "general") || data.channels[0];
    S.channel = c.id;
  }
  renderSidebar();
  renderHeader(c);
  renderMessages(c);
  renderHints(c);
  renderFactory();
  renderModal();
  document.body.dataset.version = String(data.version);
}

async function openHome() {
  S.channel = HOME;
  history.replaceState(null, "", `#${HOME}`);
  await post("/api/home", { user: S.viewer });
  refresh();
}

function go(id) {
  if (id === HOME) {
    openHome();
    return;
  }
  const c = channel(id);
  if (!c) return;
  S.channel = id;
  if (c.kind === "im" && c.user !== S.viewer) setViewer(c.user, false);
  history.replaceState(null, "", `#${encodeURIComponent(id)}`);
  refresh();
  $("#composer").focus();
}

function setViewer(id, follow = true) {
  S.viewer = id;
  localStorage.setItem("sandbox.viewer", id);
  S.modalKey = null; // force a re-render
  const c = channel(S.channel);
  if (follow && c && c.kind === "im") S.channel = `D${id}`; // a DM belongs to its person
  if (S.channel === HOME) {
    openHome();
    return;
  }
  refresh();
}

function setConn(ok) {
  const el = $("#conn");
  el.textContent = ok ? "● live" : "● reconnecting…";
  el.className = ok ? "conn" : "conn off";
}

async function send() {
  const box = $("#composer");
  const text = box.value.trim();
  if (!text) return;
  box.value = "";
  grow();
  if (text.startsWith("/")) {
    if (!/^\/incident\b/.test(text)) {
      toast(`${text.split(/\s/)[0]} is not a command here. Try /incident help`);
      return;
    }
    await post("/api/command", { user: S.viewer, channel: S.channel, text });
  } else {
    await post("/api/message", { user: S.viewer, channel: S.channel, text });
  }
  refresh();
}

function grow() {
  const box = $("#composer");
  box.style.height = "auto";
  box.style.height = `${Math.min(box.scrollHeight, 160)}px`;
}

// ---- events --------------------------------------------------------------------------------------------

document.addEventListener("click", async (ev) => {
  const t = ev.target.closest("[data-id],[data-goto],[data-act],[data-react],[data-dismiss],[data-mode],[data-hint],[data-close],[data-shortcut],#join,#shortcuts");
  if (!t) return;
  if (t.id === "shortcuts") {
    $("#shortcut-menu").hidden = !$("#shortcut-menu").hidden;
    return;
  }
  if (t.dataset.shortcut !== undefined) {
    const msg = t.closest(".message");
    $("#shortcut-menu").hidden = true;
    await post("/api/shortcut", {
      user: S.viewer, channel: S.channel === HOME ? "" : S.channel, callback_id: t.dataset.shortcut,
      ts: msg ? msg.dataset.ts : null,
    });
    refresh();
    return;
  }
  if (t.dataset.goto !== undefined) {
    ev.preventDefault();
    go(t.dataset.goto);
  } else if (t.dataset.id !== undefined && t.classList.contains("channel")) {
    go(t.dataset.id);
  } else if (t.dataset.act !== undefined && t.tagName === "BUTTON") {
    const a = S.actions.get(t.dataset.act);
    const msg = t.closest(".message");
    if (!a || !msg) return;
    if (a.element.url) window.open(a.element.url, "_blank", "noopener");
    t.disabled = true;
    await post("/api/action", {
      user: S.viewer, channel: S.channel, ts: msg.dataset.ts, ephemeral: msg.dataset.eph || null,
      block_id: a.block_id, action: a.element,
    });
    refresh();
  } else if (t.dataset.react !== undefined) {
    const msg = t.closest(".message");
    await post("/api/reaction", { user: S.viewer, channel: S.channel, ts: msg.dataset.ts, name: t.dataset.react });
    refresh();
  } else if (t.dataset.dismiss !== undefined) {
    S.dismissed.add(t.dataset.dismiss);
    render(S.data);
  } else if (t.id === "next-handoff") {
    await post("/api/oncall/next-handoff");
    refresh();
  } else if (t.dataset.mode !== undefined) {
    await post(`/api/factory/${t.dataset.mode}`);
    refresh();
  } else if (t.dataset.hint !== undefined) {
    $("#composer").value = t.dataset.hint;
    $("#composer").focus();
    grow();
  } else if (t.dataset.close !== undefined) {
    const form = $("#modal");
    S.modalErrors = {};
    if (form) await post("/api/view/close", { view_id: form.dataset.view });
    refresh();
  } else if (t.id === "join") {
    await post("/api/join", { user: S.viewer, channel: S.channel });
    refresh();
  }
});

document.addEventListener("change", async (ev) => {
  const t = ev.target;
  if (t.id === "viewer") {
    setViewer(t.value);
    return;
  }
  if (t.dataset.act === undefined || t.tagName !== "SELECT") return;
  const a = S.actions.get(t.dataset.act);
  const msg = t.closest(".message");
  if (!a || !msg) return;
  const el = { ...a.element };
  if (el.type === "users_select") el.selected_user = t.value;
  else el.selected_option = (el.options || [])[Number(t.value)];
  await post("/api/action", { user: S.viewer, channel: S.channel, ts: msg.dataset.ts, ephemeral: msg.dataset.eph || null, block_id: a.block_id, action: el });
  refresh();
});

document.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (ev.target.id === "composer-form") {
    send();
    return;
  }
  if (ev.target.id !== "modal") return;
  const form = ev.target;
  const { values, errors } = collectValues(form);
  if (Object.keys(errors).length) {
    S.modalErrors = errors;
    S.modalKey = null; // force a re-render
    renderModal();
    return;
  }
  const submit = form.querySelector("button[type=submit]");
  if (submit) submit.disabled = true;
  const r = await post("/api/view", { user: S.viewer, view_id: form.dataset.view, values });
  S.modalErrors = r.errors || {};
  S.modalKey = null; // force a re-render
  if (submit) submit.disabled = false;
  refresh();
});

document.addEventListener("keydown", (ev) => {
  if (ev.target.id === "composer" && ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    send();
  } else if (ev.key === "Escape" && $("#modal")) {
    $("#modal [data-close]").click();
  } else if (ev.key === "Enter" && ev.target.classList && ev.target.classList.contains("channel")) {
    go(ev.target.dataset.id);
  }
});
$("#composer").addEventListener("input", grow);

function connect() {
  if (!window.EventSource) return;
  const es = new EventSource("/api/events");
  es.onopen = () => setConn(true);
  es.onerror = () => setConn(false);
  es.onmessage = (e) => {
    setConn(true);
    const v = JSON.parse(e.data).version;
    if (!S.data || v !== S.data.version) refresh();
  };
}

refresh();
connect();
setInterval(refresh, 5000); // a safety net, and the Factory's state changes without an event
