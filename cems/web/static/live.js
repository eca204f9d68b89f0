// Live power on the dashboard: listens to the Server-Sent Events of /api/stream/live and
// rewrites the #live table. Served from 'self' (the Content-Security-Policy forbids inline
// scripts); builds the rows with textContent only, never HTML from the server. The page's
// language comes with the table: its data-text-* attributes hold the sentences
// ({time}, {minutes} filled in here) and data-quality the names of reading qualities.
"use strict";

(function () {
  const table = document.getElementById("live");
  const status = document.getElementById("live-status");
  if (!table || !status || typeof EventSource === "undefined") {
    return;
  }
  const text = {
    live: table.dataset.textLive || "live \u00b7 as of {time}",
    empty: table.dataset.textEmpty || "no readings in the last {minutes} minutes",
    expired: table.dataset.textExpired || "session ended \u00b7 log in again",
    closed: table.dataset.textClosed || "disconnected \u00b7 reload the page",
  };
  let qualities = {};
  try {
    qualities = JSON.parse(table.dataset.quality || "{}");
  } catch (e) {
    qualities = {};
  }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (whole, key) {
      return key in values ? String(values[key]) : whole;
    });
  }

  function clock(iso) {
    return iso.substring(11, 19); // HH:MM:SS of an ISO 8601 time in the site's zone
  }

  function cell(value, className) {
    const td = document.createElement("td");
    td.textContent = value;
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
      const quality = cell(qualities[row.quality] || row.quality);
      quality.dataset.quality = row.quality;
      tr.appendChild(quality);
      return tr;
    });
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = cell(fill(text.empty, { minutes: snapshot.window_min }));
      td.colSpan = 4;
      tr.appendChild(td);
      rows.push(tr);
    }
    table.tBodies[0].replaceChildren.apply(table.tBodies[0], rows);
    status.textContent = fill(text.live, { time: clock(snapshot.as_of) });
    status.dataset.state = "live";
  }

  const source = new EventSource("/api/stream/live");
  source.addEventListener("live", function (event) {
    render(JSON.parse(event.data));
  });
  source.addEventListener("expired", function () {
    source.close();
    status.textContent = text.expired;
    status.dataset.state = "expired";
  });
  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED) {
      status.textContent = text.closed;
      status.dataset.state = "closed";
    } else {
      status.dataset.state = "reconnecting";
    }
  });
})();
