// The playground's behaviour: ask GET /v1/playlists, show the answer and its headers, and
// poll /metrics for answers by X-Cache tier. Text is only ever set with textContent.
"use strict";

const $ = (id) => document.getElementById(id);
let lastQuery = null;

function query() {
  const params = new URLSearchParams();
  const prompt = $("prompt").value.trim();
  if (prompt) params.set("q", prompt);
  for (const slot of ["mood", "activity", "genre", "tempo"]) {
    const value = $(slot).value;
    if (value) params.set(slot, value);
  }
  params.set("n", $("n").value || "10");
  return params.toString();
}

function headers() {
  const key = $("api-key").value;
  return key ? { "X-API-Key": key } : {};
}

function show(id, text, hit) {
  const node = $(id);
  node.textContent = text || "—";
  node.classList.toggle("hit", Boolean(hit));
}

async function ask(search) {
  $("ask").disabled = true;
  const started = performance.now();
  try {
    // no-store: the browser's own cache would otherwise answer the repeat itself.
    const response = await fetch("/v1/playlists?" + search, { cache: "no-store", headers: headers() });
    const ms = performance.now() - started;
    const xcache = response.headers.get("x-cache");
    show("status", String(response.status));
    show("x-cache", xcache, xcache && xcache.startsWith("HIT"));
    show("server-timing", response.headers.get("server-timing"));
    show("round-trip", ms.toFixed(1) + " ms");
    const doc = await response.json();
    const list = $("tracks");
    list.replaceChildren();
    const problem = $("problem");
    if (!response.ok) {
      problem.hidden = false;
      problem.textContent = (doc.title || "Error") + ": " + (doc.detail || "");
      show("version", null);
      return;
    }
    problem.hidden = true;
    show("version", doc.version + (doc.degraded ? " (degraded fallback)" : ""));
    for (const track of doc.tracks) {
      const item = document.createElement("li");
      const title = document.createElement("span");
      title.className = "title";
      title.textContent = track.title;
      const artist = document.createElement("span");
      artist.className = "artist";
      artist.textContent = track.artist;
      item.append(title, artist);
      list.append(item);
    }
    lastQuery = search;
    $("again").disabled = false;
  } catch (error) {
    show("status", "no answer: " + error);
  } finally {
    $("ask").disabled = false;
    refreshTiers();
  }
}

// edge_answer_seconds_count{tier="HIT-L1"} 12.0 -> {"HIT-L1": 12}
function answersByTier(text) {
  const counts = {};
  const pattern = /^edge_answer_seconds_count\{tier="([^"]+)"\}\s+([0-9.eE+-]+)$/;
  for (const line of text.split("\n")) {
    const match = pattern.exec(line);
    if (match) counts[match[1]] = Number(match[2]);
  }
  return counts;
}

async function refreshTiers() {
  let text;
  try {
    const response = await fetch("/metrics", { cache: "no-store", headers: headers() });
    if (!response.ok) return;
    text = await response.text();
  } catch (error) {
    return;
  }
  const counts = answersByTier(text);
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const hits = Object.entries(counts)
    .filter(([tier]) => tier.startsWith("HIT") || tier === "SEMANTIC")
    .reduce((a, [, n]) => a + n, 0);
  $("hit-ratio").textContent = total ? (100 * hits / total).toFixed(1) + " %" : "—";
  const body = $("tier-table").tBodies[0];
  body.replaceChildren();
  for (const [tier, count] of Object.entries(counts).sort((a, b) => b[1] - a[1])) {
    const row = body.insertRow();
    row.dataset.tier = tier;
    row.insertCell().textContent = tier;
    row.insertCell().textContent = String(count);
    row.insertCell().textContent = (100 * count / total).toFixed(1) + " %";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("ask-form").addEventListener("submit", (event) => {
    event.preventDefault();
    ask(query());
  });
  $("again").addEventListener("click", () => {
    if (lastQuery !== null) ask(lastQuery);
  });
  refreshTiers();
  setInterval(refreshTiers, 2000);
});
