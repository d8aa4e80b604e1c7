// The storefront homepage: renders exactly what GET /v1/homepage returns, logs what the shopper
// does through POST /v1/events (as a real client would), and shows what the next page changed.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const root = $("storefront");
  const config = JSON.parse($("storefront-config").textContent);
  const form = $("controls");
  const DAY_MS = 86400000;
  const HOUR_MS = 3600000;
  const storeClock = new Date(config.clock);
  const openedAt = Date.now();

  let session = newSession();
  let current = null; // {page, key}: the main page on screen
  let previous = null; // the main page before it (same shopper, pipeline and context)
  let busy = false;
  let dialogItem = null;
  let eventsSinceRender = 0;

  function randomId(prefix) {
    const bytes = new Uint8Array(6);
    crypto.getRandomValues(bytes);
    return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function newSession() {
    // A fixed exploration seed per session: a new page differs from the last because of what
    // the shopper did, not because exploration drew again.
    return { id: randomId("web-"), seed: Math.floor(Math.random() * 2147483647) };
  }

  // --- the clock: pages and events share one, so events always precede the next page ---------

  function contextBase() {
    const hour = $("ctx-hour").value;
    const day = Number($("ctx-day").value); // 0 = Monday
    if (hour === "clock" && day === (storeClock.getUTCDay() + 6) % 7) return storeClock;
    const midnight = Date.UTC(storeClock.getUTCFullYear(), storeClock.getUTCMonth(), storeClock.getUTCDate());
    const clockDay = (storeClock.getUTCDay() + 6) % 7;
    const hours = hour === "clock" ? storeClock.getUTCHours() + storeClock.getUTCMinutes() / 60 : Number(hour);
    let t = midnight + ((day - clockDay + 7) % 7) * DAY_MS + hours * HOUR_MS;
    if (t < storeClock.getTime() - HOUR_MS) t += 7 * DAY_MS; // the next such moment after the store's data
    return new Date(Math.max(t, storeClock.getTime()));
  }

  function now() {
    return new Date(contextBase().getTime() + (Date.now() - openedAt));
  }

  // --- state in the address bar -----------------------------------------------------------

  function readUrl() {
    const params = new URLSearchParams(location.search);
    const user = params.get("user");
    if (user) setUser(user);
    for (const [name, id] of [["day", "ctx-day"], ["hour", "ctx-hour"], ["location", "ctx-location"],
      ["surface", "ctx-surface"], ["compare", "compare"]]) {
      const value = params.get(name);
      if (value !== null && [...$(id).options].some((o) => o.value === value)) $(id).value = value;
    }
    $("debug").checked = params.get("debug") === "1";
  }

  function writeUrl() {
    const params = new URLSearchParams();
    params.set("user", userId());
    for (const [name, id] of [["day", "ctx-day"], ["hour", "ctx-hour"], ["location", "ctx-location"],
      ["surface", "ctx-surface"], ["compare", "compare"]]) {
      if ($(id).value) params.set(name, $(id).value);
    }
    if ($("debug").checked) params.set("debug", "1");
    history.replaceState(null, "", "/?" + params.toString());
  }

  function setUser(user) {
    $("user-id").value = user;
    const pick = $("user-pick");
    pick.value = [...pick.options].some((o) => o.value === user) ? user : "__other__";
  }

  function userId() {
    return $("user-id").value.trim();
  }

  // --- the API ------------------------------------------------------------------------------

  function pageKey(pipeline) {
    return [userId(), pipeline, $("ctx-day").value, $("ctx-hour").value, $("ctx-location").value,
      $("ctx-surface").value, session.id].join("|");
  }

  async function fetchPage(pipeline) {
    const params = new URLSearchParams({
      user_id: userId(), surface: $("ctx-surface").value, at: now().toISOString(), rows: config.rows,
      items: config.items, session_id: session.id, pipeline, seed: session.seed,
    });
    if ($("ctx-location").value) params.set("location", $("ctx-location").value);
    const response = await fetch("/v1/homepage?" + params.toString(), { headers: { accept: "application/json" } });
    const body = await response.json();
    if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
    return body;
  }

  async function postEvents(events) {
    const headers = { "content-type": "application/json" };
    if (config.client_key) headers["x-client-key"] = config.client_key;
    const response = await fetch("/v1/events", { method: "POST", headers, body: JSON.stringify({ events }) });
    const body = await response.json();
    if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
    if (body.rejected) throw new Error(`event refused: ${body.errors.map((e) => `${e.field}: ${e.reason}`).join("; ")}`);
    return body;
  }

  function eventFor(page, slot, row, type, ts) {
    const event = {
      ts: ts.toISOString(), user_id: page.user_id, session_id: session.id, event_type: type,
      item_id: slot.item_id, collection_id: row.collection_id, row: row.row, position: slot.position,
      request_id: page.request_id, surface: page.surface,
    };
    if (page.location) event.location = page.location;
    if (type === "impression") event.propensity = slot.propensity;
    return event;
  }

  // --- rendering ----------------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role" || key === "id" ||
        key === "type" || key === "title" || key === "hidden" || key === "tabindex") node.setAttribute(key, value === true ? "" : value);
      else node[key] = value;
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    }
    return node;
  }

  const fmtScore = (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(3));
  const fmtPrice = (x) => (x === null || x === undefined ? "" : Number(x).toFixed(2));

  function hue(text) {
    let h = 0;
    for (const ch of text || "") h = (h * 31 + ch.charCodeAt(0)) >>> 0;
    return h % 8;
  }

  function initials(title) {
    return (title || "?").split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join("");
  }

  function thumb(slot) {
    // Item images live on the store's CDN; the storefront makes no external request, so it
    // draws a placeholder and names the image address (debug mode shows it).
    const label = slot.has_image ? `Placeholder for the image of ${slot.title}` : `${slot.title}: no image`;
    return el("span", { class: `thumb hue-${hue(slot.category_id)}${slot.has_image ? "" : " no-image"}`,
      role: "img", "aria-label": label, title: slot.image_url || null },
    el("span", { "aria-hidden": "true", text: slot.has_image ? initials(slot.title) : "no image" }));
  }

  function badges(list, extra = []) {
    const all = [...extra, ...(list || [])];
    if (!all.length) return null;
    return el("span", { class: "badges" },
      all.map((b) => el("span", { class: `badge badge-${b.replace(/\s+/g, "-")}`, text: b })));
  }

  function signals(map) {
    const entries = Object.entries(map || {});
    if (!entries.length) return null;
    return el("span", { class: "signals", text: entries.map(([k, v]) => `${k} ${fmtScore(v)}`).join(" · ") });
  }

  function renderPage(page, container, meta, options) {
    const { prev, mainItems, interactive } = options;
    const prevRows = new Map((prev ? prev.rows : []).map((r) => [r.collection_id, r]));
    const rows = [];
    const changes = { newRows: 0, up: 0, down: 0, newItems: 0, gone: 0 };
    if (prev) {
      const ids = new Set(page.rows.map((r) => r.collection_id));
      changes.gone = prev.rows.filter((r) => !ids.has(r.collection_id)).length;
    }
    for (const row of page.rows) {
      const before = prevRows.get(row.collection_id);
      const beforeItems = new Set(before ? before.items.map((s) => s.item_id) : []);
      const titleId = `${container.id}-row-${row.row}`;
      const flags = [];
      if (row.pinned) flags.push("pinned");
      if (row.explore) flags.push("explore");
      let moved = null;
      let rowClass = "collection";
      if (prev && !before) {
        rowClass += " is-new";
        changes.newRows += 1;
        moved = el("span", { class: "change change-new", text: "new on this page" });
      } else if (prev && before.row !== row.row) {
        const delta = before.row - row.row;
        changes[delta > 0 ? "up" : "down"] += 1;
        rowClass += " is-moved";
        moved = el("span", { class: `change change-${delta > 0 ? "up" : "down"}`,
          text: `${delta > 0 ? "▲" : "▼"} ${Math.abs(delta)}`,
          "aria-label": `moved ${delta > 0 ? "up" : "down"} ${Math.abs(delta)} row${Math.abs(delta) > 1 ? "s" : ""}` });
      }
      const cards = row.items.map((slot) => {
        const tipId = `${container.id}-tip-${row.row}-${slot.position}`;
        let cls = "card";
        if (prev && before && !beforeItems.has(slot.item_id)) {
          cls += " is-new-item";
          changes.newItems += 1;
        } else if (prev && !before) {
          changes.newItems += 1;
        }
        if (mainItems && !mainItems.has(slot.item_id)) cls += " only-here";
        const card = el(interactive ? "button" : "div", {
          class: cls, type: interactive ? "button" : null, tabindex: interactive ? null : "0",
          "data-item-id": slot.item_id, "data-row": row.row, "data-position": slot.position,
          "aria-describedby": tipId,
        },
        thumb(slot),
        el("span", { class: "card-title", text: slot.title || slot.item_id }),
        el("span", { class: "card-brand", text: slot.brand }),
        el("span", { class: "card-category", text: slot.category }),
        el("span", { class: "card-price", text: fmtPrice(slot.price) }),
        badges(slot.badges),
        el("span", { class: "tip", role: "tooltip", id: tipId, text: slot.reason || "Recommended for you" }),
        el("span", { class: "debug-only debug-line" },
          `score ${fmtScore(slot.score)} · propensity ${fmtScore(slot.propensity)} · ${slot.item_id}`,
          signals(slot.signals)));
        if (interactive) card.addEventListener("click", () => openItem(page, row, slot));
        return el("li", { class: "slot" }, card);
      });
      rows.push(el("section", { class: rowClass, "aria-labelledby": titleId, "data-collection-id": row.collection_id,
        "data-row": row.row },
      el("header", { class: "collection-header" },
        el("h3", { id: titleId, text: row.title }), moved, badges([], flags),
        el("p", { class: "collection-reason", text: row.reason }),
        el("p", { class: "debug-only debug-line" },
          `score ${fmtScore(row.score)} · retrieval ${fmtScore(row.retrieval_score)} · propensity ` +
          `${fmtScore(row.propensity)} · ${row.source}/${row.generator} · ${row.collection_id}`, signals(row.signals))),
      el("ul", { class: "carousel", "aria-label": `${row.title}: ${row.items.length} products` }, cards)));
    }
    container.replaceChildren(...rows);
    if (!page.rows.length) container.append(el("p", { text: "This page has no collections." }));
    const stages = Object.entries(page.timings_ms || {}).map(([k, v]) => `${k} ${Number(v).toFixed(1)}`).join(", ");
    const rules = Object.entries(page.rule_counts || {}).map(([k, v]) => `${k} ${v}`).join(", ") || "none";
    meta.replaceChildren(el("dl", {},
      el("dt", { text: "request" }), el("dd", { text: page.request_id }),
      el("dt", { text: "pipeline · model" }), el("dd", { text: `${page.pipeline} · ${page.model_version || "none"}` }),
      el("dt", { text: "new user · fallback" }), el("dd", { text: `${page.new_user} · ${page.fallback}${page.fallback_reason ? " (" + page.fallback_reason + ")" : ""}` }),
      el("dt", { text: "at" }), el("dd", { text: page.at }),
      el("dt", { text: "timings (ms)" }), el("dd", { text: `${stages}; server ${page.server_ms}` }),
      el("dt", { text: "rule actions" }), el("dd", { text: rules })));
    return changes;
  }

  function describeChanges(c) {
    const parts = [];
    if (c.newRows) parts.push(`${c.newRows} new collection${c.newRows > 1 ? "s" : ""}`);
    if (c.up) parts.push(`${c.up} moved up`);
    if (c.down) parts.push(`${c.down} moved down`);
    if (c.gone) parts.push(`${c.gone} gone`);
    if (c.newItems) parts.push(`${c.newItems} new product${c.newItems > 1 ? "s" : ""}`);
    return parts.length ? parts.join(", ") + " (highlighted)." : "Nothing changed.";
  }

  function columnTitle(page, pipeline) {
    const who = page.new_user ? `${page.user_id} (new user)` : page.user_id;
    const what = pipeline === "default" ? "full system" : pipeline;
    return `${who} · ${what}${page.fallback ? " · fallback page" : ""}`;
  }

  async function refresh({ reason = "", afterEvents = false } = {}) {
    if (!form.reportValidity()) return;
    busy = true;
    root.dataset.state = "loading";
    root.setAttribute("aria-busy", "true");
    $("status").textContent = reason || "Loading the page…";
    writeUrl();
    document.body.classList.toggle("debug", $("debug").checked);
    const compare = $("compare").value;
    try {
      const [page, other] = await Promise.all([fetchPage("default"), compare ? fetchPage(compare) : null]);
      const key = pageKey("default");
      previous = current && current.key === key ? current.page : null;
      current = { page, key };
      const changes = renderPage(page, $("rows-main"), $("meta-main"), { prev: previous, interactive: true });
      $("column-main-title").textContent = columnTitle(page, "default");
      const changed = $("changes");
      changed.hidden = !previous;
      if (previous) $("changes-text").textContent = describeChanges(changes);
      // The card that had focus is gone with the old page: take the reader to what changed.
      if (previous && afterEvents) $("changes-title").focus();
      $("column-compare").hidden = !other;
      $("pages").classList.toggle("side-by-side", Boolean(other));
      $("compare-summary").hidden = !other;
      if (other) {
        const mainItems = new Set(page.rows.flatMap((r) => r.items.map((s) => s.item_id)));
        renderPage(other, $("rows-compare"), $("meta-compare"), { mainItems, interactive: false });
        $("column-compare-title").textContent = columnTitle(other, compare);
        const mainRows = new Set(page.rows.map((r) => r.collection_id));
        const sharedRows = other.rows.filter((r) => mainRows.has(r.collection_id)).length;
        const otherItems = other.rows.flatMap((r) => r.items.map((s) => s.item_id));
        const sharedItems = otherItems.filter((i) => mainItems.has(i)).length;
        $("compare-summary").textContent = `${compare} shares ${sharedRows} of ${other.rows.length} collections ` +
          `and ${sharedItems} of ${otherItems.length} products with the full system; products only on the ` +
          `${compare} page are outlined.`;
      }
      const n = page.rows.reduce((k, r) => k + r.items.length, 0);
      $("status").textContent = `${page.rows.length} collections, ${n} products for ${page.user_id}` +
        `${page.new_user ? " (new user)" : ""}, built in ${Number(page.server_ms).toFixed(0)} ms.`;
      root.dataset.requestId = page.request_id;
      root.dataset.renders = String(Number(root.dataset.renders) + 1);
      root.dataset.state = "ready";
      eventsSinceRender = 0;
      if ($("log-impressions").checked) logImpressions(page);
    } catch (error) {
      root.dataset.state = "error";
      $("status").textContent = `Could not load the page: ${error.message}`;
    } finally {
      busy = false;
      root.removeAttribute("aria-busy");
    }
  }

  function logImpressions(page) {
    const ts = new Date(page.at);
    const events = page.rows.flatMap((row) => row.items.map((slot) => eventFor(page, slot, row, "impression", ts)));
    if (events.length) {
      postEvents(events).catch((error) => { $("status").textContent = `Impressions not logged: ${error.message}`; });
    }
  }

  // --- a product: click, add to cart, back to the next page ---------------------------------

  async function openItem(page, row, slot) {
    dialogItem = { page, row, slot, carted: false };
    $("dialog-thumb").replaceChildren(thumb(slot));
    $("dialog-title").textContent = slot.title || slot.item_id;
    $("dialog-meta").textContent = [slot.brand, slot.category, fmtPrice(slot.price)].filter(Boolean).join(" · ");
    $("dialog-reason").textContent = `Why here: ${slot.reason || row.reason}`;
    $("dialog-status").textContent = "Logging the click…";
    $("add-to-cart").disabled = true;
    $("item-dialog").showModal();
    try {
      await postEvents([eventFor(page, slot, row, "click", now())]);
      eventsSinceRender += 1;
      $("dialog-status").textContent = "Click logged.";
      $("add-to-cart").disabled = false;
    } catch (error) {
      $("dialog-status").textContent = `The click was not logged: ${error.message}`;
    }
  }

  $("add-to-cart").addEventListener("click", async () => {
    if (!dialogItem || dialogItem.carted) return;
    $("add-to-cart").disabled = true;
    try {
      await postEvents([eventFor(dialogItem.page, dialogItem.slot, dialogItem.row, "add_to_cart", now())]);
      dialogItem.carted = true;
      eventsSinceRender += 1;
      $("dialog-status").textContent = "Added to cart.";
      $("item-dialog").close("carted");
    } catch (error) {
      $("dialog-status").textContent = `Not added: ${error.message}`;
      $("add-to-cart").disabled = false;
    }
  });

  $("item-dialog").addEventListener("close", () => {
    const carted = dialogItem && dialogItem.carted;
    const title = dialogItem ? dialogItem.slot.title : "";
    dialogItem = null;
    if (eventsSinceRender > 0) {
      refresh({ reason: carted ? `Added ${title} to the cart: loading the next page…` : "Loading the next page…",
        afterEvents: true });
    }
  });

  // --- controls -----------------------------------------------------------------------------

  $("user-pick").addEventListener("change", () => {
    const value = $("user-pick").value;
    if (value === "__other__") {
      $("user-id").focus();
      $("user-id").select();
      return;
    }
    $("user-id").value = value === "__new__" ? randomId("guest-") : value;
    session = newSession();
    refresh();
  });
  $("user-id").addEventListener("change", () => {
    session = newSession();
  });
  for (const id of ["ctx-day", "ctx-hour", "ctx-location", "ctx-surface", "compare"]) {
    $(id).addEventListener("change", () => refresh());
  }
  $("debug").addEventListener("change", () => {
    // The same page, with its scores shown: no new request.
    document.body.classList.toggle("debug", $("debug").checked);
    writeUrl();
  });
  $("new-session").addEventListener("click", () => {
    session = newSession();
    current = null;
    refresh({ reason: "A new session: loading the page…" });
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!busy) refresh();
  });

  // On a phone the controls fold away; the page comes first.
  if (window.matchMedia("(max-width: 720px)").matches) $("controls-box").open = false;
  readUrl();
  refresh();
})();
