/* verticals support bot: embeddable chat widget (one script tag).
   <script src="https://HOST/widget.js" data-tenant="TENANT" data-key="WIDGET_KEY"
           data-title="Help" data-filter='{"category": "delivery"}'></script>
   A launcher bubble opens and minimises the chat. At load it asks GET /v1/widget for the
   greeting's suggested questions, which also checks the key: a wrong one is reported in the
   console for the site owner, and the shopper gets a plain notice. Answers stream over
   Server-Sent Events (fetch + ReadableStream) with a typing indicator, citations as links,
   thumbs up/down (POST /v1/feedback) and "Talk to a person" (POST /v1/handoffs); staff replies
   are polled. data-filter (a JSON object) is sent as `filter` with every question. */
(function () {
  "use strict";
  var script = document.currentScript;
  var base = new URL(script.src).origin;
  var tenant = script.getAttribute("data-tenant");
  var key = script.getAttribute("data-key");
  var title = script.getAttribute("data-title") || "Help";
  var PREFIX = "verticals support widget: ";
  var UNAVAILABLE = "Chat is not available right now. Please try again later or contact us " +
    "another way.";
  var filter = null;
  var rawFilter = script.getAttribute("data-filter");
  if (rawFilter) {
    try {
      filter = JSON.parse(rawFilter);
      if (!filter || typeof filter !== "object" || Array.isArray(filter)) {
        throw new Error("not a JSON object");
      }
    } catch (e) {
      console.error(PREFIX + "data-filter is ignored: " + e.message + " (" + rawFilter + ")");
      filter = null;
    }
  }

  // the conversation: an id and its token from POST /v1/sessions (the token lets this page, and
  // only it, write to the conversation and read it back), asked for at the first question, kept
  // for the tab
  var storeKey = "vsb-session2-" + tenant;
  var session = null, token = null, starting = null;
  try {
    var saved = JSON.parse(sessionStorage.getItem(storeKey) || "null");
    if (saved && saved.id && saved.token) { session = saved.id; token = saved.token; }
  } catch (e) { /* start a new one */ }
  var lastSeen = 0;
  var broken = null;  // why the widget cannot work (bad key, unknown tenant), once known

  function apiError(res, body) {
    var err = new Error((body && body.detail) || res.statusText || ("HTTP " + res.status));
    err.status = res.status;
    return err;
  }

  function call(method, path, body, withToken) {
    var headers = { "X-API-Key": key };
    if (body) { headers["Content-Type"] = "application/json"; }
    if (withToken && token) { headers["X-Session-Token"] = token; }
    return fetch(base + path, {
      method: method, headers: headers, body: body ? JSON.stringify(body) : undefined
    }).then(function (res) {
      return res.json().catch(function () { return null; }).then(function (data) {
        if (!res.ok) { throw apiError(res, data); }
        return data;
      });
    });
  }

  function ensureSession() {
    if (session) { return Promise.resolve(); }
    if (!starting) {
      starting = call("POST", "/v1/sessions", { tenant: tenant }).then(function (s) {
        session = s.session_id;
        token = s.session_token;
        sessionStorage.setItem(storeKey, JSON.stringify({ id: session, token: token }));
      });
      starting.catch(function () { starting = null; });  // the next question tries again
    }
    return starting;
  }

  var css =
    ".vsb-root{font:14px/1.45 system-ui,-apple-system,sans-serif;color:#1d2430}" +
    ".vsb-root *{box-sizing:border-box}" +
    ".vsb-launch{position:fixed;right:16px;bottom:16px;width:56px;height:56px;border-radius:50%;" +
    "border:0;background:#234;color:#fff;font-size:26px;cursor:pointer;z-index:2147483001;" +
    "display:flex;align-items:center;justify-content:center;" +
    "box-shadow:0 4px 14px rgba(0,0,0,.25)}" +
    ".vsb-launch:focus-visible,.vsb-root button:focus-visible,.vsb-root input:focus-visible{" +
    "outline:3px solid #f0a500;outline-offset:2px}" +
    ".vsb-panel{position:fixed;right:16px;bottom:84px;width:360px;max-width:calc(100vw - 16px);" +
    "height:540px;max-height:calc(100vh - 100px);display:flex;flex-direction:column;background:#fff;" +
    "border:1px solid #c8ccd2;border-radius:12px;box-shadow:0 6px 24px rgba(0,0,0,.18);" +
    "z-index:2147483000;overflow:hidden}" +
    ".vsb-panel[hidden]{display:none}" +
    "@media (max-width:420px){.vsb-panel{right:8px;left:8px;width:auto;max-width:none;bottom:80px}}" +
    ".vsb-head{display:flex;align-items:center;gap:8px;padding:10px 12px;background:#234;color:#fff}" +
    ".vsb-head h2{flex:1;margin:0;font-size:15px}" +
    ".vsb-head button{border:0;background:transparent;color:#fff;font-size:20px;cursor:pointer;" +
    "padding:2px 8px;border-radius:6px}" +
    ".vsb-log{flex:1;overflow-y:auto;padding:10px 12px}" +
    ".vsb-msg{margin:8px 0;padding:8px 10px;border-radius:10px;white-space:pre-wrap;" +
    "overflow-wrap:anywhere;max-width:88%}" +
    ".vsb-user{background:#e3ecfd;margin-left:auto}.vsb-bot{background:#f1f2f4}" +
    ".vsb-staff{background:#fff1c7}.vsb-system{background:#fdecea;color:#7a1c12;max-width:100%}" +
    ".vsb-who{display:block;font-size:11px;color:#5a6270;margin-bottom:2px}" +
    ".vsb-cites{font-size:12px;margin-top:6px}.vsb-cites a{display:block;color:#1a4fa0}" +
    ".vsb-notice{font-size:12px;color:#7a4300;margin-top:6px}" +
    ".vsb-suggest{display:flex;flex-direction:column;gap:6px;margin:4px 0 8px}" +
    ".vsb-suggest button{text-align:left;border:1px solid #9fb3d6;background:#fff;color:#1a4fa0;" +
    "border-radius:16px;padding:6px 12px;cursor:pointer;font:inherit}" +
    ".vsb-rate{display:flex;align-items:center;gap:4px;margin-top:6px;font-size:12px;color:#5a6270}" +
    ".vsb-rate button{border:1px solid #c8ccd2;background:#fff;border-radius:6px;cursor:pointer;" +
    "padding:3px 7px;font-size:14px;line-height:1;color:#3b4350}" +
    ".vsb-rate button[aria-pressed=true]{background:#234;color:#fff;border-color:#234}" +
    ".vsb-typing span{display:inline-block;width:7px;height:7px;margin-right:3px;border-radius:50%;" +
    "background:#7d8591;animation:vsb-blink 1s infinite}" +
    ".vsb-typing span:nth-child(2){animation-delay:.2s}.vsb-typing span:nth-child(3){animation-delay:.4s}" +
    "@keyframes vsb-blink{0%,100%{opacity:.25}50%{opacity:1}}" +
    ".vsb-foot{border-top:1px solid #dde0e4}" +
    ".vsb-form{display:flex}.vsb-form input{flex:1;min-width:0;border:0;padding:12px;font:inherit}" +
    ".vsb-form button{border:0;background:#234;color:#fff;padding:0 16px;font:inherit;cursor:pointer}" +
    ".vsb-form button:disabled,.vsb-form input:disabled{opacity:.55;cursor:not-allowed}" +
    ".vsb-person{display:block;width:100%;border:0;border-top:1px solid #eceef1;background:#fafbfc;" +
    "color:#1a4fa0;padding:7px;font:inherit;font-size:13px;cursor:pointer}" +
    ".vsb-sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}";
  // icons as inline SVG (emoji fonts are not everywhere); paths from Material Icons (Apache 2.0)
  function icon(path, extra) {
    return '<svg aria-hidden="true" focusable="false" viewBox="0 0 24 24" width="1em" ' +
      'height="1em" fill="currentColor"' + (extra || "") + '><path d="' + path + '"/></svg>';
  }
  var CHAT = icon("M20 2H4c-1.1 0-2 .9-2 2v18l4-4h14c1.1 0 2-.9 2-2V4c0-1.1-.9-2-2-2z");
  var CLOSE = icon("M19 6.41 17.59 5 12 10.59 6.41 5 5 6.41 10.59 12 5 17.59 6.41 19 12 " +
    "13.41 17.59 19 19 17.59 13.41 12z");
  var THUMB = "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44" +
    "-1.06L14.17 1 7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02" +
    "-7.05c.09-.23.14-.47.14-.73v-2z";
  var style = document.createElement("style");
  style.textContent = css;
  document.head.appendChild(style);

  var root = document.createElement("div");
  root.className = "vsb-root";
  root.setAttribute("data-vsb", "widget");
  root.innerHTML =
    '<button type="button" class="vsb-launch" aria-expanded="false" aria-controls="vsb-panel" ' +
    'aria-label="Open chat">' + CHAT + '</button>' +
    '<section class="vsb-panel" id="vsb-panel" role="dialog" aria-labelledby="vsb-title" hidden>' +
    '<div class="vsb-head"><h2 id="vsb-title"></h2>' +
    '<button type="button" class="vsb-min" aria-label="Minimise chat">&#8211;</button></div>' +
    '<div class="vsb-log" role="log" aria-live="polite" aria-relevant="additions" ' +
    'aria-label="Conversation"></div>' +
    '<div class="vsb-foot"><form class="vsb-form">' +
    '<label class="vsb-sr" for="vsb-input">Your question</label>' +
    '<input id="vsb-input" name="q" autocomplete="off" placeholder="Ask a question" maxlength="2000">' +
    '<button type="submit" class="vsb-send">Send</button></form>' +
    '<button type="button" class="vsb-person">Talk to a person</button></div></section>';
  root.querySelector("#vsb-title").textContent = title;
  document.body.appendChild(root);
  var launch = root.querySelector(".vsb-launch");
  var panel = root.querySelector(".vsb-panel");
  var log = root.querySelector(".vsb-log");
  var form = root.querySelector("form");
  var input = form.querySelector("input");
  var sendButton = form.querySelector("button");
  var personButton = root.querySelector(".vsb-person");

  // open / minimise -------------------------------------------------------------------------
  var openKey = "vsb-open-" + tenant;
  function setOpen(open, focus) {
    panel.hidden = !open;
    launch.setAttribute("aria-expanded", String(open));
    launch.setAttribute("aria-label", open ? "Close chat" : "Open chat");
    launch.innerHTML = open ? CLOSE : CHAT;
    try { sessionStorage.setItem(openKey, open ? "1" : "0"); } catch (e) { /* private mode */ }
    if (focus) { (open ? input : launch).focus(); }
  }
  launch.addEventListener("click", function () { setOpen(panel.hidden, true); });
  root.querySelector(".vsb-min").addEventListener("click", function () { setOpen(false, true); });
  document.addEventListener("keydown", function (e) {
    var at = document.activeElement;
    if (e.key === "Escape" && !panel.hidden && (root.contains(at) || at === document.body)) {
      setOpen(false, true);
    }
  });
  setOpen(sessionStorage.getItem(openKey) === "1", false);

  // messages --------------------------------------------------------------------------------
  var WHO = { user: "You", bot: "Assistant", staff: "Support team", system: "Notice" };
  function clock(iso) {
    var when = iso ? new Date(iso) : new Date();
    return when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  function bubble(role, text, iso) {
    var div = document.createElement("div");
    div.className = "vsb-msg vsb-" + role;
    var who = document.createElement("span");
    who.className = "vsb-who";
    var time = document.createElement("time");
    time.dateTime = (iso ? new Date(iso) : new Date()).toISOString();
    time.textContent = clock(iso);
    who.appendChild(document.createTextNode(WHO[role] + " · "));
    who.appendChild(time);
    div.appendChild(who);
    var body = document.createElement("span");
    body.className = "vsb-text";
    body.textContent = text || "";
    div.appendChild(body);
    log.appendChild(div);
    log.scrollTop = log.scrollHeight;
    return div;
  }

  function disable(why) {
    input.disabled = sendButton.disabled = personButton.disabled = true;
    input.placeholder = why;
  }

  // tell the site owner (console) what is wrong, and the shopper something useful
  function failed(err, doing) {
    var reason = err && err.message ? err.message : String(err);
    if (err && (err.status === 401 || err.status === 403 || err.status === 404)) {
      broken = reason;
      console.error(PREFIX + doing + " failed: " + reason + " (tenant " + JSON.stringify(tenant) +
        ", data-key " + (key ? key.slice(0, 6) + "..." : "missing") + ", server " + base + ")");
      disable("Chat unavailable");
      return UNAVAILABLE;
    }
    console.error(PREFIX + doing + " failed: " + reason);
    if (err && err.status === 422 || err && err.status === 400) {
      return "Sorry, I could not read that message. Please rephrase it and try again.";
    }
    return "Sorry, I could not reach our support service. Please try again in a moment.";
  }

  function greet(suggestions) {
    var hello = bubble("bot", "Hi! How can we help? Ask a question, or pick one of these:");
    hello.classList.add("vsb-greeting");
    var list = document.createElement("div");
    list.className = "vsb-suggest";
    list.setAttribute("role", "group");
    list.setAttribute("aria-label", "Suggested questions");
    suggestions.forEach(function (q) {
      var b = document.createElement("button");
      b.type = "button";
      b.textContent = q;
      b.addEventListener("click", function () { if (!broken) { send(q); } });
      list.appendChild(b);
    });
    if (suggestions.length) { hello.appendChild(list); }
  }

  function rating(div, reply) {
    var row = document.createElement("div");
    row.className = "vsb-rate";
    row.setAttribute("role", "group");
    row.setAttribute("aria-label", "Was this answer helpful?");
    var label = document.createElement("span");
    label.textContent = "Helpful?";
    row.appendChild(label);
    [["up", icon(THUMB), "Yes, helpful"],
      ["down", icon(THUMB, ' style="transform:rotate(180deg)"'), "No, not helpful"]]
      .forEach(function (r) {
        var b = document.createElement("button");
        b.type = "button";
        b.className = "vsb-" + r[0];
        b.innerHTML = r[1];
        b.setAttribute("aria-label", r[2]);
        b.setAttribute("aria-pressed", "false");
        b.addEventListener("click", function () {
          call("POST", "/v1/feedback", {
            tenant: tenant, session_id: session, message_id: reply.message_id, rating: r[0]
          }, true).then(function () {
            row.querySelectorAll("button").forEach(function (x) {
              x.setAttribute("aria-pressed", String(x === b));
            });
            label.textContent = "Thanks for your feedback";
            row.setAttribute("data-rated", r[0]);
          }).catch(function (err) { label.textContent = failed(err, "feedback"); });
        });
        row.appendChild(b);
      });
    div.appendChild(row);
  }

  function finish(div, reply) {
    div.setAttribute("data-kind", reply.kind);
    div.setAttribute("data-message", String(reply.message_id));
    if (reply.citations && reply.citations.length) {
      var cites = document.createElement("div");
      cites.className = "vsb-cites";
      reply.citations.forEach(function (c) {
        var a = document.createElement(c.url ? "a" : "span");
        if (c.url) { a.href = c.url; a.target = "_blank"; a.rel = "noopener"; }
        a.textContent = c.title + (c.heading ? " · " + c.heading : "");
        a.setAttribute("data-entry", c.id);
        cites.appendChild(a);
      });
      div.appendChild(cites);
    }
    if (reply.kind === "handoff") {
      var note = document.createElement("div");
      note.className = "vsb-notice";
      note.textContent = "A member of our team will take over this conversation.";
      div.appendChild(note);
      poll();
    } else if (reply.message_id) {
      rating(div, reply);
    }
    lastSeen = Math.max(lastSeen, reply.message_id || 0);
  }

  function typing(div) {
    var dots = document.createElement("span");
    dots.className = "vsb-typing";
    dots.setAttribute("role", "status");
    dots.innerHTML = "<span></span><span></span><span></span>" +
      '<b class="vsb-sr">The assistant is typing</b>';
    div.appendChild(dots);
    return dots;
  }

  function send(text) {
    if (broken) { return Promise.resolve(); }
    bubble("user", text);
    var div = bubble("bot", "");
    div.setAttribute("data-state", "streaming");
    div.setAttribute("aria-busy", "true");
    var span = div.querySelector(".vsb-text");
    var dots = typing(div);
    function stopTyping() { if (dots.parentNode) { dots.parentNode.removeChild(dots); } }
    var body = { tenant: tenant, session_id: null, message: text };
    if (filter) { body.filter = filter; }
    return ensureSession().then(function () {
      body.session_id = session;
      return fetch(base + "/v1/chat/stream", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-API-Key": key, "X-Session-Token": token },
        body: JSON.stringify(body)
      });
    }).then(function (res) {
      if (!res.ok) {
        if (res.status === 403 && token) {  // the token no longer holds: open a new conversation
          session = token = null;
          sessionStorage.removeItem(storeKey);
        }
        return res.json().catch(function () { return null; })
          .then(function (e) { throw apiError(res, e); });
      }
      var reader = res.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      function pump() {
        return reader.read().then(function (r) {
          if (r.done) { return; }
          buffer += decoder.decode(r.value, { stream: true });
          var parts = buffer.split("\n\n");
          buffer = parts.pop();
          parts.forEach(function (block) {
            var ev = "message", data = "";
            block.split("\n").forEach(function (line) {
              if (line.indexOf("event: ") === 0) { ev = line.slice(7); }
              else if (line.indexOf("data: ") === 0) { data += line.slice(6); }
            });
            if (!data) { return; }
            var payload = JSON.parse(data);
            if (ev === "delta") {
              stopTyping();
              span.textContent += payload.text;
              log.scrollTop = log.scrollHeight;
            }
            if (ev === "done") { stopTyping(); span.textContent = payload.text; finish(div, payload); }
          });
          return pump();
        });
      }
      return pump();
    }).catch(function (err) {
      stopTyping();
      div.className = "vsb-msg vsb-system";
      span.textContent = failed(err, "chat");
    }).then(function () {
      div.setAttribute("data-state", "done");
      div.removeAttribute("aria-busy");
    });
  }

  var asking = false;
  function askForPerson() {
    if (broken || asking) { return; }
    asking = true;
    ensureSession().then(function () {
      return call("POST", "/v1/handoffs", { tenant: tenant, session_id: session }, true);
    }).then(function (opened) {
      bubble("user", "I would like to talk to a person.");
      var div = bubble("bot", opened.text);
      div.setAttribute("data-kind", "handoff");
      div.setAttribute("data-handoff", String(opened.handoff_id));
      lastSeen = Math.max(lastSeen, opened.message_id);
      poll();
    }).catch(function (err) {
      bubble("system", failed(err, "talk to a person"));
    }).then(function () { asking = false; });
  }

  // a conversation of this tab that went on on another page: show it again
  function restore() {
    if (!session) { return null; }
    return call("GET", "/v1/sessions/" + encodeURIComponent(session) + "/messages?tenant=" +
      encodeURIComponent(tenant), null, true).then(function (rows) {
      var handedOff = false;
      rows.forEach(function (m) {
        var div = bubble(m.role === "staff" ? "staff" : m.role === "user" ? "user" : "bot",
          m.text, m.created_at);
        if (m.kind) { div.setAttribute("data-kind", m.kind); }
        handedOff = handedOff || m.kind === "handoff";
        lastSeen = Math.max(lastSeen, m.id);
      });
      if (handedOff) { poll(); }
    }).catch(function () {  // an expired conversation: the next question opens a new one
      session = token = null;
      sessionStorage.removeItem(storeKey);
    });
  }

  var polling = false;
  function poll() {
    if (polling) { return; }
    polling = true;
    setInterval(function () {
      fetch(base + "/v1/sessions/" + encodeURIComponent(session) + "/messages?tenant=" +
        encodeURIComponent(tenant) + "&after=" + lastSeen,
        { headers: { "X-API-Key": key, "X-Session-Token": token } })
        .then(function (r) { return r.ok ? r.json() : []; })
        .then(function (rows) {
          rows.forEach(function (m) {
            lastSeen = Math.max(lastSeen, m.id);
            if (m.role === "staff") { bubble("staff", m.text, m.created_at); }
          });
        }).catch(function () {});
    }, 4000);
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text) { return; }
    input.value = "";
    send(text);
  });
  personButton.addEventListener("click", askForPerson);

  // at load: the greeting's suggestions, and the check that the key and tenant are right
  if (!tenant || !key) {
    broken = "missing data-tenant or data-key";
    console.error(PREFIX + "the script tag needs data-tenant and data-key (the tenant's widget key)");
    bubble("system", UNAVAILABLE);
    disable("Chat unavailable");
  } else {
    call("GET", "/v1/widget?tenant=" + encodeURIComponent(tenant))
      .then(function (config) { greet(config.suggestions || []); return restore(); })
      .catch(function (err) { bubble("system", failed(err, "start-up")); });
  }
})();
