// invoice-outbox dashboard: the little JavaScript of our own.  Pages work without it; it adds
// live progress bars and a CSRF-carrying fetch helper.  No third-party code.
//
// Progress polling: any element with data-poll-url (usually a <progress>) fetches that URL
// every second.  The JSON answer has the API's job shape: {Status, Total, Done, Skipped, Failed}.
// The <progress> gets max = Total and value = Done + Skipped + Failed; an element named by
// data-poll-text (a CSS selector, e.g. "#job-status", ideally aria-live="polite") gets a
// sentence.  Polling stops when Status is not "Running"; the element then receives a
// "poll:done" event (detail: the JSON), and with data-poll-reload the page reloads.
"use strict";
(function () {
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // POST JSON (or nothing) with the session's CSRF token in X-CSRF-Token.
  function postJSON(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  function describe(job) {
    var handled = (job.Done || 0) + (job.Skipped || 0) + (job.Failed || 0);
    var text = handled + " of " + (job.Total || 0) + " handled";
    if (job.Skipped) text += ", " + job.Skipped + " skipped";
    if (job.Failed) text += ", " + job.Failed + " failed";
    if (job.Status === "Done") text = "Finished: " + text + ".";
    else if (job.Status === "Failed") text = "Stopped with an error: " + text + ".";
    else text += "\u2026";
    return { handled: handled, text: text };
  }

  function poll(element) {
    var url = element.getAttribute("data-poll-url");
    var textTarget = element.getAttribute("data-poll-text");
    var output = textTarget ? document.querySelector(textTarget) : null;
    var stopped = false;
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok || response.redirected) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (job) {
          var shown = describe(job);
          if (element.tagName === "PROGRESS") {
            element.max = Math.max(job.Total || 0, 1);
            element.value = shown.handled;
          }
          element.setAttribute("data-poll-status", job.Status || "");
          if (output) output.textContent = shown.text;
          // Every counter on the page moves with the bar, so the page never contradicts itself.
          ["Done", "Skipped", "Failed"].forEach(function (name) {
            document.querySelectorAll('[data-count="' + name + '"]').forEach(function (cell) {
              cell.textContent = String(job[name] || 0);
            });
          });
          if (job.Status && job.Status !== "Running") {
            stopped = true;
            element.dispatchEvent(new CustomEvent("poll:done", { detail: job, bubbles: true }));
            if (element.hasAttribute("data-poll-reload")) window.location.reload();
          }
        })
        .catch(function () {
          if (output) output.textContent = "Could not read the progress; retrying\u2026";
        })
        .finally(function () {
          if (!stopped) window.setTimeout(tick, 1000);
        });
    }
    tick();
  }

  // "Select every invoice on this page": the header checkbox ticks the rows' checkboxes.
  function pickAll(box) {
    var name = box.getAttribute("data-pick-all");
    var rows = document.querySelectorAll('input[type="checkbox"][name="' + name + '"]');
    function count() {
      var picked = document.querySelectorAll('input[name="' + name + '"]:checked').length;
      var note = document.getElementById("bulk-picked");
      if (note) note.textContent = picked ? picked + " ticked on this page." : "None ticked yet.";
    }
    box.addEventListener("change", function () {
      rows.forEach(function (row) { row.checked = box.checked; });
      count();
    });
    rows.forEach(function (row) { row.addEventListener("change", count); });
  }

  // "Refresh every 30 s": remembered per browser; never while something is ticked or typed.
  function autoRefresh(box) {
    var key = "invoiceOutbox.autoRefresh";
    var seconds = parseInt(box.getAttribute("data-refresh-seconds"), 10) || 30;
    box.checked = window.localStorage.getItem(key) === "on";
    box.addEventListener("change", function () {
      window.localStorage.setItem(key, box.checked ? "on" : "off");
    });
    window.setInterval(function () {
      var busy = document.querySelector('input[name="sending"]:checked, #bulk[open], textarea:focus, input:focus:not(#auto-refresh), select:focus');
      if (box.checked && !busy) window.location.reload();
    }, seconds * 1000);
  }

  // The 14-day chart on a narrow screen: start scrolled to the most recent days.
  function showRecent(box) {
    box.scrollLeft = box.scrollWidth;
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll-url]").forEach(poll);
    document.querySelectorAll("[data-pick-all]").forEach(pickAll);
    document.querySelectorAll("#auto-refresh").forEach(autoRefresh);
    document.querySelectorAll("[data-scroll-end]").forEach(showRecent);
  });

  window.invoiceOutbox = { csrfToken: csrfToken, postJSON: postJSON, poll: poll };
})();
