// Parley's small client: keyboard sending, frame ordering, and scrolling.
// Everything else is server-rendered HTML swapped in by htmx's websocket extension.
(function () {
  "use strict";

  var DELTA = /^<div hx-swap-oob="beforeend:#([\w-]+)" data-offset="(\d+)" data-end="(\d+)"/;
  var lastSent = "";
  var syncPending = false;

  function requestSync(socket) {
    if (syncPending) return;
    syncPending = true;
    socket.send(JSON.stringify({ action: "sync" }));
    setTimeout(function () { syncPending = false; }, 1000);
  }

  function nearBottom(el) {
    return el.scrollHeight - el.scrollTop - el.clientHeight < 120;
  }

  // Delta frames say where their text starts and ends. Drop duplicates; on a gap
  // (frames missed while reconnecting) ask the server for a snapshot instead.
  document.addEventListener("htmx:wsBeforeMessage", function (event) {
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
    var error = document.getElementById("composer-error");
    var input = document.getElementById("composer-input");
    // The server refused the message: put the text back so nothing is lost.
    if (error && error.dataset.restore && input && !input.value && lastSent) {
      input.value = lastSent;
      lastSent = "";
      delete error.dataset.restore;
    }
  });

  document.addEventListener("htmx:wsAfterSend", function (event) {
    var form = event.target.closest && event.target.closest("#composer");
    if (!form) return;
    var input = document.getElementById("composer-input");
    lastSent = input.value;
    input.value = "";
    input.focus();
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
