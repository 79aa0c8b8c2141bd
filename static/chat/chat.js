// Parley's small client: keyboard sending, delivery of messages, frame ordering, and
// scrolling. Everything else is server-rendered HTML swapped in by htmx's websocket
// extension.
(function () {
  "use strict";

  // The page's language: sentences this script shows, translated on the server.
  var STRINGS = {};
  try { STRINGS = JSON.parse(document.getElementById("js-strings").textContent) || {}; } catch (e) {}
  function t(text) { return STRINGS[text] || text; }

  var syncPending = false;
  var lastFrameAt = Date.now();
  var activeSocket = null;
  // The message sent but not yet acknowledged: {id, text, resent, cleared}. The
  // composer empties once the message shows (provisionally) or is stored; until the
  // server says it stored it, the text is kept here, sent again after a reconnect, and
  // put back in the composer if the server refuses it, so nothing typed is ever lost.
  var pending = null;

  function restoreComposer() {
    var input = document.getElementById("composer-input");
    if (pending && pending.cleared && input && input.value === "") input.value = pending.text;
  }

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
    if (pending && pending.cleared && pending.text !== text) {
      // The last message is shown but not yet stored: one at a time, so a reconnect
      // can send it again.
      event.preventDefault();
      composerStatus(t("Your last message is still being saved. Send this one in a moment."));
      return;
    }
    if (!pending || pending.text !== text) pending = { id: newId(), text: text, resent: false };
    event.detail.parameters.client_id = pending.id;
    setSending(true);
  });

  // Flow control: tell the server what has arrived, every few kilobytes. It holds back a
  // reply's frames for a tab that stopped reading, instead of piling them up in memory,
  // and catches it up by snapshot once it reads again.
  var ACK_EVERY = 8192, received = 0, acknowledged = 0;
  document.addEventListener("htmx:wsOpen", function () { received = 0; acknowledged = 0; });
  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    received += event.detail.message.length;
    if (received - acknowledged < ACK_EVERY) return;
    acknowledged = received;
    event.detail.socketWrapper.send(JSON.stringify({ action: "ack", received: received }));
  });

  // Delta frames say where their text starts and ends. Drop duplicates; on a gap
  // (frames missed while reconnecting) ask the server for a snapshot instead. Settle
  // parts append a streaming reply's finished blocks, rendered, and name the stretch of
  // raw text they cover; once swapped in, that raw text is hidden.
  var PART = /<div hx-swap-oob="beforeend:#([\w-]+)" (?:data-offset="(\d+)" data-end="(\d+)"|data-settle-from="(\d+)" data-settle-to="(\d+)")/g;
  var settles = [];
  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    lastFrameAt = Date.now();
    activeSocket = event.detail.socketWrapper;
    var messages = document.getElementById("messages");
    if (messages) messages.dataset.stick = nearBottom(messages) ? "1" : "";
    var text = event.detail.message;
    var ends = {}, settled = {}, found = [], fresh = 0, stale = 0, gap = false, match;
    PART.lastIndex = 0;
    while ((match = PART.exec(text))) {
      var target = document.getElementById(match[1]);
      if (!target) { gap = true; break; }
      if (match[2] !== undefined) {
        var have = match[1] in ends ? ends[match[1]] : Number(target.dataset.end || 0);
        var end = Number(match[3]);
        if (end <= have) { stale++; continue; }
        if (Number(match[2]) !== have) { gap = true; break; }
        ends[match[1]] = end;
        fresh++;
      } else {
        var done = match[1] in settled ? settled[match[1]] : Number(target.dataset.settled || 0);
        var to = Number(match[5]);
        if (to <= done) { stale++; continue; }
        if (Number(match[4]) !== done) { gap = true; break; }
        settled[match[1]] = to;
        found.push({ id: match[1], from: done, to: to });
        fresh++;
      }
    }
    if (!gap && !stale && !fresh) {
      // Not a delta. A streaming message's full HTML is the snapshot a sync asked for.
      if (text.indexOf('data-status="streaming"') !== -1) syncPending = false;
      return;
    }
    if (gap || (stale && fresh)) {
      event.preventDefault();
      requestSync(event.detail.socketWrapper);
      return;
    }
    if (!fresh) { event.preventDefault(); return; }
    Object.keys(ends).forEach(function (id) { document.getElementById(id).dataset.end = String(ends[id]); });
    Object.keys(settled).forEach(function (id) { document.getElementById(id).dataset.settled = String(settled[id]); });
    settles = settles.concat(found);
  });

  // Move ``count`` code points from the start of a streaming text's visible part into
  // its hidden, already-rendered part.
  function hideSettled(textElement, count) {
    var hidden = textElement.querySelector(".settled-raw");
    if (!hidden) {
      hidden = document.createElement("span");
      hidden.className = "settled-raw";
      hidden.hidden = true;
      textElement.insertBefore(hidden, textElement.firstChild);
    }
    var open = "";
    while (hidden.nextSibling) {
      open += hidden.nextSibling.textContent;
      textElement.removeChild(hidden.nextSibling);
    }
    var index = 0;
    for (var seen = 0; seen < count && index < open.length; seen++) {
      var code = open.charCodeAt(index);
      index += code >= 0xd800 && code <= 0xdbff ? 2 : 1;
    }
    hidden.textContent += open.slice(0, index);
    textElement.appendChild(document.createTextNode(open.slice(index)));
  }

  document.addEventListener("htmx:wsAfterMessage", function () {
    var pendingSettles = settles;
    settles = [];
    pendingSettles.forEach(function (settle) {
      var textElement = document.getElementById(settle.id.replace(/-done$/, "-text"));
      if (textElement) hideSettled(textElement, settle.to - settle.from);
    });
  });

  // Screen readers hear a reply once, when it is complete, not every 50 ms frame: the
  // history is not a live region; the status region announces finished replies.
  var streamingIds = {};
  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    var found = /<article id="(m-\d+)" class="message assistant status-streaming"/.exec(event.detail.message);
    if (found) streamingIds[found[1]] = true;
  });
  function announceFinished() {
    Object.keys(streamingIds).forEach(function (id) {
      var article = document.getElementById(id);
      if (!article) { delete streamingIds[id]; return; }
      if (article.dataset.status === "streaming") return;
      delete streamingIds[id];
      var speaker = article.querySelector(".speaker");
      var body = article.querySelector(".body");
      var text = body ? body.innerText.trim() : "";
      if (text.length > 400) text = text.slice(0, 400) + "…";
      announce((speaker ? speaker.textContent + ": " : "") + (text || article.dataset.status));
    });
  }

  document.addEventListener("htmx:wsAfterMessage", function () {
    announceFinished();
    var messages = document.getElementById("messages");
    if (messages && messages.dataset.stick) messages.scrollTop = messages.scrollHeight;
    var status = document.getElementById("composer-error");
    if (!status || !pending) return;
    if (!pending.cleared && document.getElementById("p-" + pending.id)) {
      // Shown while the server stores it: the composer is free for the next message.
      var composer = document.getElementById("composer-input");
      if (composer && composer.value === pending.text) composer.value = "";
      pending.cleared = true;
      composerStatus(""); // an earlier refusal no longer applies
    }
    if (status.dataset.ack === pending.id) {
      // Stored: now the composer may be cleared (unless the person typed on), and the
      // stored message and reply take the provisional ones' place.
      var box = document.getElementById("p-" + pending.id);
      if (box && status.dataset.replyId) {
        box.dataset.replyId = status.dataset.replyId;
        box.dataset.messageId = status.dataset.messageId;
        box.dataset.storedAt = String(Date.now());
      }
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
      restoreComposer();
      pending = null; // refused with a reason; the text is back in the composer
      setSending(false);
    }
  });

  // A provisional exchange (chat/provisional.py) shows a message and its reply's first
  // words before the server has stored them. Once the stored pair is on the page it
  // stays hidden until its reply has as much text as the provisional one (or ended),
  // then replaces it in one step. A provisional exchange the server discards is
  // deleted by an out-of-band swap, which shows the stored pair at once.
  var SWAP_AFTER = 10000;
  function endOf(id) {
    var element = document.getElementById(id);
    return element ? Number(element.dataset.end || 0) : 0;
  }
  function caughtUp(box, reply) {
    if (reply.dataset.status !== "streaming") return true;
    if (Date.now() - Number(box.dataset.storedAt || 0) > SWAP_AFTER) return true;
    var mine = box.id + "-r";
    return endOf(reply.id + "-text") >= endOf(mine + "-text") &&
      endOf(reply.id + "-reasoning") >= endOf(mine + "-reasoning");
  }
  function settleProvisional() {
    document.querySelectorAll(".provisional[data-reply-id]").forEach(function (box) {
      var reply = document.getElementById("m-" + box.dataset.replyId);
      if (!reply) return; // its stored articles have not arrived yet
      var stored = [document.getElementById("m-" + box.dataset.messageId), reply];
      var done = caughtUp(box, reply);
      if (done) box.remove();
      stored.forEach(function (article) {
        if (!article) return;
        article.classList.toggle("awaiting-swap", !done);
        article.dataset.box = box.id;
      });
    });
    document.querySelectorAll(".awaiting-swap").forEach(function (article) {
      if (!document.getElementById(article.dataset.box)) article.classList.remove("awaiting-swap");
    });
  }
  document.addEventListener("htmx:wsAfterMessage", settleProvisional);
  setInterval(settleProvisional, 1000);

  document.addEventListener("htmx:wsClose", function () {
    // The server forgets what it showed provisionally; a resend shows it again.
    document.querySelectorAll(".provisional").forEach(function (box) { box.remove(); });
    settleProvisional();
  });

  document.addEventListener("htmx:wsClose", function () {
    if (!pending) return;
    if (pending.resent) {
      composerStatus(t("Your message was not sent. Press Send to try again."));
      restoreComposer();
      pending = null;
      setSending(false);
    } else {
      composerStatus(t("Connection lost before your message was confirmed. It will be sent again when Parley reconnects."));
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

  // Copy buttons: a code block's code, or a message's text. "Copied" confirms it, on the
  // button and to screen readers.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } finally { document.body.removeChild(area); }
    return Promise.resolve();
  }

  function announce(text) {
    var status = document.getElementById("live-status");
    if (!status) return;
    status.textContent = "";
    setTimeout(function () { status.textContent = text; }, 50);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    if (!button) return;
    var source = button.dataset.copy === "code"
      ? button.closest(".code-block").querySelector("code")
      : button.closest(".message").querySelector(".body");
    if (!source) return;
    copyText(source.innerText.replace(/\n$/, "")).then(function () {
      var label = button.textContent;
      button.textContent = t("Copied");
      announce(t("Copied"));
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  });

  // Edit opens the message's form in place; Cancel closes it.
  function toggleEdit(id, open) {
    var form = document.getElementById("edit-" + id);
    var button = document.querySelector('[data-edit="' + id + '"]');
    if (!form) return;
    form.hidden = !open;
    if (button) button.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) form.querySelector("textarea").focus();
    else if (button) button.focus();
  }

  document.addEventListener("click", function (event) {
    if (!event.target.closest) return;
    // A button that shows or hides a form (Rename).
    var toggle = event.target.closest("[data-toggle]");
    if (toggle) {
      var target = document.getElementById(toggle.dataset.toggle);
      if (target) {
        target.hidden = !target.hidden;
        document.querySelectorAll('[data-toggle="' + toggle.dataset.toggle + '"][aria-expanded]').forEach(function (b) {
          b.setAttribute("aria-expanded", target.hidden ? "false" : "true");
        });
        var field = !target.hidden && target.querySelector("input:not([type=hidden]), textarea");
        if (field) { field.focus(); field.select && field.select(); }
      }
    }
    // A button that opens a confirmation dialog (Delete), and the dialog's Cancel.
    var opener = event.target.closest("[data-dialog]");
    if (opener) {
      var dialog = document.getElementById(opener.dataset.dialog);
      if (dialog && dialog.showModal) dialog.showModal();
    }
    var closer = event.target.closest("[data-close-dialog]");
    if (closer) closer.closest("dialog").close();
    var edit = event.target.closest("[data-edit]");
    if (edit) toggleEdit(edit.dataset.edit, true);
    var cancel = event.target.closest("[data-edit-cancel]");
    if (cancel) toggleEdit(cancel.dataset.editCancel, false);
  });

  // Phone: the sidebar is a drawer behind "Menu".
  function setDrawer(open) {
    document.body.classList.toggle("drawer-open", open);
    var button = document.querySelector("[data-drawer]");
    if (button) button.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      var first = document.querySelector("#sidebar a, #sidebar button, #sidebar select");
      if (first) first.focus();
    } else if (button && button.offsetParent) {
      button.focus();
    }
  }

  document.addEventListener("click", function (event) {
    if (!event.target.closest) return;
    if (event.target.closest("[data-drawer]")) {
      setDrawer(!document.body.classList.contains("drawer-open"));
    } else if (document.body.classList.contains("drawer-open") && !event.target.closest("#sidebar")) {
      setDrawer(false); // a tap outside the drawer closes it
    }
  });

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  // Shortcuts, listed in the "Keyboard shortcuts" dialog.
  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented) return;
    if ((event.ctrlKey || event.metaKey) && event.shiftKey && (event.key === "O" || event.key === "o")) {
      var newChat = document.querySelector("form.new-chat");
      if (newChat) { event.preventDefault(); newChat.requestSubmit(); }
      return;
    }
    if (event.key === "Escape") {
      if (document.querySelector("dialog[open]")) return; // the dialog closes itself
      if (document.body.classList.contains("drawer-open")) { setDrawer(false); return; }
      if (event.target.closest && event.target.closest(".edit-form, .rename-form")) return;
      var stop = document.querySelector(".chat:has(.status-streaming) .stop");
      if (stop) { event.preventDefault(); stop.click(); }
      return;
    }
    if (event.key === "?" && !typing(event.target)) {
      var help = document.getElementById("shortcuts-dialog");
      if (help && !help.open) { event.preventDefault(); help.showModal(); }
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && event.target.closest && event.target.closest(".edit-form")) {
      toggleEdit(event.target.closest(".edit-form").id.replace("edit-", ""), false);
      return;
    }
    if (event.target.id !== "composer-input") return;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (event.target.value.trim()) event.target.form.requestSubmit();
    }
  });

  // Long conversations show their newest messages; older ones load when the top of the
  // history scrolls into view (or on "Load earlier messages"), keeping the scroll place.
  var historyReady = false;
  var olderObserver = window.IntersectionObserver
    ? new IntersectionObserver(function (entries) {
        entries.forEach(function (entry) {
          if (entry.isIntersecting) {
            olderObserver.unobserve(entry.target);
            htmx.trigger(entry.target, "loadolder");
          }
        });
      })
    : null;

  function watchOlder() {
    if (!historyReady || !olderObserver) return;
    document.querySelectorAll(".older-messages:not([data-watched])").forEach(function (el) {
      el.dataset.watched = "1";
      olderObserver.observe(el);
    });
  }

  var keepFromBottom = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    var messages = document.getElementById("messages");
    if (messages && event.detail.target.classList && event.detail.target.classList.contains("older-messages")) {
      keepFromBottom = messages.scrollHeight - messages.scrollTop;
    }
  });
  document.addEventListener("htmx:afterSwap", function () {
    var messages = document.getElementById("messages");
    if (messages && keepFromBottom !== null) {
      messages.scrollTop = messages.scrollHeight - keepFromBottom;
      keepFromBottom = null;
    }
  });
  document.addEventListener("htmx:load", watchOlder);

  // Times: relative ("5 minutes ago") in the page's language, exact on hover.
  function relativeTimes() {
    if (!window.Intl || !Intl.RelativeTimeFormat) return;
    var lang = document.documentElement.lang || undefined;
    var format = new Intl.RelativeTimeFormat(lang, { numeric: "auto" });
    var now = Date.now();
    document.querySelectorAll("time[datetime]").forEach(function (el) {
      var then = Date.parse(el.getAttribute("datetime"));
      if (isNaN(then)) return;
      var seconds = Math.round((then - now) / 1000);
      var minutes = Math.round(seconds / 60), hours = Math.round(seconds / 3600);
      var days = Math.round(seconds / 86400);
      var text;
      if (Math.abs(seconds) < 60) text = format.format(0, "second");
      else if (Math.abs(minutes) < 60) text = format.format(minutes, "minute");
      else if (Math.abs(hours) < 24) text = format.format(hours, "hour");
      else if (Math.abs(days) < 7) text = format.format(days, "day");
      else text = new Date(then).toLocaleDateString(lang);
      el.textContent = text;
      el.title = new Date(then).toLocaleString(lang);
    });
  }
  document.addEventListener("htmx:load", relativeTimes);

  // The account keeps the browser's time zone, so dates the server writes (the sidebar's
  // Today / Yesterday, search results) are local ones.
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("time-zone-form");
    if (!form || !window.Intl || !window.fetch) return;
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (!zone || zone === form.dataset.current) return;
    form.elements.time_zone.value = zone;
    fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" })
      .then(function (response) { if (response.ok) form.dataset.current = zone; })
      .catch(function () {});
  });

  // New chat: a persona selects the model it starts on and shows its description; the
  // chosen model's full label shows under the (narrow) picker.
  function showPickers() {
    var persona = document.getElementById("new-chat-persona");
    var model = document.getElementById("new-chat-model");
    var description = document.getElementById("persona-description");
    var hint = document.getElementById("model-hint");
    if (persona && description) {
      var chosen = persona.options[persona.selectedIndex];
      description.textContent = (chosen && chosen.dataset.description) || "";
    }
    if (model && hint) {
      var option = model.options[model.selectedIndex];
      hint.textContent = option ? option.textContent : "";
    }
  }
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("[data-autosubmit]")) event.target.form.requestSubmit();
    if (event.target.id === "new-chat-persona") {
      var chosen = event.target.options[event.target.selectedIndex];
      var model = document.getElementById("new-chat-model");
      if (chosen && chosen.dataset.model && model) model.value = chosen.dataset.model;
    }
    if (event.target.id === "new-chat-persona" || event.target.id === "new-chat-model") showPickers();
  });
  document.addEventListener("DOMContentLoaded", showPickers);
  document.addEventListener("htmx:wsAfterMessage", relativeTimes);
  setInterval(relativeTimes, 60000);

  document.addEventListener("DOMContentLoaded", function () {
    var messages = document.getElementById("messages");
    if (messages) messages.scrollTop = messages.scrollHeight;
    historyReady = true;
    watchOlder();
  });
})();
