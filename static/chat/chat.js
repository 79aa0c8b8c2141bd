// Parley's small client: keyboard sending, delivery of messages, frame ordering, and
// scrolling. Everything else is server-rendered HTML swapped in by htmx's websocket
// extension.
(function () {
  "use strict";

  var DELTA = /^<div hx-swap-oob="beforeend:#([\w-]+)" data-offset="(\d+)" data-end="(\d+)"/;
  var syncPending = false;
  var lastFrameAt = Date.now();
  var activeSocket = null;
  // The message sent but not yet acknowledged: {id, text, resent}. The composer keeps
  // its text until the server says it stored it, so nothing typed is ever lost.
  var pending = null;

  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }

  function composerStatus(text) {
    var status = document.getElementById("composer-error");
    if (status) status.textContent = text;
  }

  function setSending(on) {
    var form = document.getElementById("composer");
    if (form) form.classList.toggle("sending", on);
  }

  function requestSync(socket) {
    if (syncPending) return;
    syncPending = true;
    socket.send(JSON.stringify({ action: "sync" }));
    setTimeout(function () { syncPending = false; }, 1000);
  }

  function nearBottom(el) {
    return el.scrollHeight - el.scrollTop - el.clientHeight < 120;
  }

  // Every message carries an id of the browser's, so a resend is stored once.
  document.addEventListener("htmx:wsConfigSend", function (event) {
    var form = event.target.closest && event.target.closest("#composer");
    if (!form) return;
    var text = event.detail.parameters.message;
    if (!pending || pending.text !== text) pending = { id: newId(), text: text, resent: false };
    event.detail.parameters.client_id = pending.id;
    setSending(true);
  });

  // Delta frames say where their text starts and ends. Drop duplicates; on a gap
  // (frames missed while reconnecting) ask the server for a snapshot instead.
  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    lastFrameAt = Date.now();
    activeSocket = event.detail.socketWrapper;
    var messages = document.getElementById("messages");
    if (messages) messages.dataset.stick = nearBottom(messages) ? "1" : "";
    var match = DELTA.exec(event.detail.message);
    if (!match) {
      // A streaming message's full HTML is the snapshot our sync request asked for.
      if (event.detail.message.indexOf('data-status="streaming"') !== -1) syncPending = false;
      return;
    }
    var target = document.getElementById(match[1]);
    var offset = Number(match[2]);
    var end = Number(match[3]);
    var have = target ? Number(target.dataset.end || 0) : -1;
    if (target && end <= have) {
      event.preventDefault();
      return;
    }
    if (!target || offset !== have) {
      event.preventDefault();
      requestSync(event.detail.socketWrapper);
      return;
    }
    target.dataset.end = String(end);
  });

  document.addEventListener("htmx:wsAfterMessage", function () {
    var messages = document.getElementById("messages");
    if (messages && messages.dataset.stick) messages.scrollTop = messages.scrollHeight;
    var status = document.getElementById("composer-error");
    if (!status || !pending) return;
    if (status.dataset.ack === pending.id) {
      // Stored: now the composer may be cleared (unless the person typed on).
      var input = document.getElementById("composer-input");
      if (input && input.value === pending.text) input.value = "";
      var shown = document.getElementById("m-" + status.dataset.messageId);
      if (pending.resent && !shown && messages) {
        // Stored before the socket dropped, but its frame never arrived: reload the list.
        htmx.ajax("GET", window.location.pathname, { target: "#messages", select: "#messages", swap: "outerHTML" });
      }
      pending = null;
      setSending(false);
    } else if (status.dataset.refused === pending.id) {
      pending = null; // refused with a reason; the text is still in the composer
      setSending(false);
    }
  });

  document.addEventListener("htmx:wsClose", function () {
    if (!pending) return;
    if (pending.resent) {
      composerStatus("Your message was not sent. Press Send to try again.");
      pending = null;
      setSending(false);
    } else {
      composerStatus("Connection lost before your message was confirmed. It will be sent again when Parley reconnects.");
    }
  });

  // A reply shown as live that has sent nothing for a while may have ended while its
  // frames were lost (a Redis outage, an overloaded layer): ask for the stored state.
  setInterval(function () {
    if (!activeSocket || Date.now() - lastFrameAt < 15000) return;
    if (!document.querySelector('.message[data-status="streaming"]')) return;
    lastFrameAt = Date.now();
    requestSync(activeSocket);
  }, 5000);

  document.addEventListener("htmx:wsOpen", function (event) {
    activeSocket = event.detail.socketWrapper;
    if (!pending || pending.resent) return;
    pending.resent = true;
    event.detail.socketWrapper.send(
      JSON.stringify({ action: "send", message: pending.text, client_id: pending.id })
    );
  });

  document.addEventListener("keydown", function (event) {
    if (event.target.id !== "composer-input") return;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (event.target.value.trim()) event.target.form.requestSubmit();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var messages = document.getElementById("messages");
    if (messages) messages.scrollTop = messages.scrollHeight;
  });
})();
