// Live power on the dashboard: listens to the Server-Sent Events of /api/stream/live and
// rewrites the #live table. Served from 'self' (the Content-Security-Policy forbids inline
// scripts); builds the rows with textContent only, never HTML from the server.
"use strict";

(function () {
  const table = document.getElementById("live");
  const status = document.getElementById("live-status");
  if (!table || !status || typeof EventSource === "undefined") {
    return;
  }

  function clock(iso) {
    return iso.substring(11, 19); // HH:MM:SS of an ISO 8601 time in the site's zone
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) {
      td.className = className;
    }
    return td;
  }

  function render(snapshot) {
    const rows = snapshot.rows.map(function (row) {
      const tr = document.createElement("tr");
      tr.dataset.device = row.device;
      tr.appendChild(cell(row.device));
      const kw = cell(row.kw === null ? "\u2013" : row.kw.toFixed(1), "kw");
      kw.dataset.kw = row.kw === null ? "" : String(row.kw);
      tr.appendChild(kw);
      tr.appendChild(cell(clock(row.time)));
      tr.appendChild(cell(row.quality));
      return tr;
    });
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = cell("no readings in the last " + snapshot.window_min + " minutes");
      td.colSpan = 4;
      tr.appendChild(td);
      rows.push(tr);
    }
    table.tBodies[0].replaceChildren.apply(table.tBodies[0], rows);
    status.textContent = "live \u00b7 as of " + clock(snapshot.as_of);
    status.dataset.state = "live";
  }

  const source = new EventSource("/api/stream/live");
  source.addEventListener("live", function (event) {
    render(JSON.parse(event.data));
  });
  source.addEventListener("expired", function () {
    source.close();
    status.textContent = "session ended \u00b7 log in again";
    status.dataset.state = "expired";
  });
  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED) {
      status.textContent = "disconnected \u00b7 reload the page";
      status.dataset.state = "closed";
    } else {
      status.dataset.state = "reconnecting";
    }
  });
})();
