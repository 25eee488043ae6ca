/* verticals support bot: embeddable chat widget (one script tag).
   <script src="https://HOST/widget.js" data-tenant="TENANT" data-key="WIDGET_KEY"></script>
   Streams answers over Server-Sent Events (fetch + ReadableStream), shows citations as links
   and a notice when the conversation is handed to a person. */
(function () {
  "use strict";
  var script = document.currentScript;
  var base = new URL(script.src).origin;
  var tenant = script.getAttribute("data-tenant");
  var key = script.getAttribute("data-key");
  var title = script.getAttribute("data-title") || "Help";
  // the conversation: an id and its token from POST /v1/sessions (the token lets this page, and
  // only it, write to the conversation and read it back), asked for at the first question, kept
  // for the tab
  var storeKey = "vsb-session2-" + tenant;
  var session = null, token = null, starting = null;
  try {
    var saved = JSON.parse(sessionStorage.getItem(storeKey) || "null");
    if (saved && saved.id && saved.token) { session = saved.id; token = saved.token; }
  } catch (e) { /* start a new one */ }
  function ensureSession() {
    if (session) { return Promise.resolve(); }
    if (!starting) {
      starting = fetch(base + "/v1/sessions", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-API-Key": key },
        body: JSON.stringify({ tenant: tenant })
      }).then(function (res) {
        return res.json().then(function (s) {
          if (!res.ok) { throw new Error(s.detail || res.statusText); }
          session = s.session_id;
          token = s.session_token;
          sessionStorage.setItem(storeKey, JSON.stringify({ id: session, token: token }));
        });
      });
      starting.catch(function () { starting = null; });  // the next question tries again
    }
    return starting;
  }
  var lastSeen = 0;

  var css = ".vsb-box{position:fixed;right:16px;bottom:16px;width:340px;max-height:520px;display:flex;" +
    "flex-direction:column;font:14px/1.4 system-ui,sans-serif;background:#fff;border:1px solid #ccc;" +
    "border-radius:10px;box-shadow:0 4px 18px rgba(0,0,0,.15);z-index:2147483000}" +
    ".vsb-head{padding:10px 12px;background:#234;color:#fff;border-radius:10px 10px 0 0;font-weight:600}" +
    ".vsb-log{flex:1;overflow-y:auto;padding:10px;min-height:200px}" +
    ".vsb-msg{margin:6px 0;padding:7px 10px;border-radius:8px;white-space:pre-wrap}" +
    ".vsb-user{background:#e8f0fe;margin-left:40px}.vsb-bot{background:#f3f3f3;margin-right:20px}" +
    ".vsb-staff{background:#fff4d6;margin-right:20px}" +
    ".vsb-cites{font-size:12px;margin-top:4px}.vsb-cites a{display:block;color:#1a56b0}" +
    ".vsb-notice{font-size:12px;color:#8a4b00;margin-top:4px}" +
    ".vsb-form{display:flex;border-top:1px solid #ddd}.vsb-form input{flex:1;border:0;padding:10px}" +
    ".vsb-form button{border:0;background:#234;color:#fff;padding:0 14px;border-radius:0 0 10px 0}";
  var style = document.createElement("style");
  style.textContent = css;
  document.head.appendChild(style);

  var box = document.createElement("div");
  box.className = "vsb-box";
  box.setAttribute("data-vsb", "widget");
  box.innerHTML = '<div class="vsb-head"></div><div class="vsb-log" aria-live="polite"></div>' +
    '<form class="vsb-form"><input name="q" autocomplete="off" placeholder="Ask a question" ' +
    'maxlength="2000"><button type="submit">Send</button></form>';
  box.querySelector(".vsb-head").textContent = title;
  document.body.appendChild(box);
  var log = box.querySelector(".vsb-log");
  var form = box.querySelector("form");
  var input = form.querySelector("input");

  function bubble(role, text) {
    var div = document.createElement("div");
    div.className = "vsb-msg vsb-" + role;
    var body = document.createElement("span");
    body.className = "vsb-text";
    body.textContent = text || "";
    div.appendChild(body);
    log.appendChild(div);
    log.scrollTop = log.scrollHeight;
    return div;
  }

  function finish(div, reply) {
    div.setAttribute("data-kind", reply.kind);
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
    }
    lastSeen = Math.max(lastSeen, reply.message_id || 0);
  }

  function send(text) {
    bubble("user", text);
    var div = bubble("bot", "");
    div.setAttribute("data-state", "streaming");
    var span = div.querySelector(".vsb-text");
    return ensureSession().then(function () {
      return fetch(base + "/v1/chat/stream", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-API-Key": key, "X-Session-Token": token },
        body: JSON.stringify({ tenant: tenant, session_id: session, message: text })
      });
    }).then(function (res) {
      if (!res.ok) {
        if (res.status === 403 && token) {  // the token no longer holds: open a new conversation
          session = token = null;
          sessionStorage.removeItem(storeKey);
        }
        return res.json().then(function (e) { throw new Error(e.detail || res.statusText); });
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
            if (ev === "delta") { span.textContent += payload.text; log.scrollTop = log.scrollHeight; }
            if (ev === "done") { span.textContent = payload.text; finish(div, payload); }
          });
          return pump();
        });
      }
      return pump();
    }).catch(function (err) {
      span.textContent = "Sorry, something went wrong (" + err.message + ").";
    }).then(function () { div.setAttribute("data-state", "done"); });
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
            if (m.role === "staff") { bubble("staff", m.text); }
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
})();
