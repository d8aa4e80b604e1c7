// The operator view: the admin API (collections, stock, images, models) and /metrics, with the
// admin token kept in this tab and sent as the X-Admin-Token header.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const root = $("operator");
  const TOKEN_KEY = "shelfrank-admin-token";
  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let collections = [];

  function status(text) {
    $("op-status").textContent = text;
  }

  async function api(path, { method = "GET", body } = {}) {
    const headers = { "X-Admin-Token": token, accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (response.status === 204) return null;
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(data.message || `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function cell(...children) {
    const td = document.createElement("td");
    td.append(...children);
    return td;
  }

  function text(tag, value, cls) {
    const node = document.createElement(tag);
    node.textContent = value;
    if (cls) node.className = cls;
    return node;
  }

  function button(label, onClick, cls = "secondary") {
    const b = document.createElement("button");
    b.type = "button";
    b.className = cls;
    b.textContent = label;
    b.addEventListener("click", onClick);
    return b;
  }

  async function guarded(what, action) {
    try {
      await action();
    } catch (error) {
      status(`${what} failed: ${error.message}`);
      if (error.status === 401 || error.status === 403) lock();
      return false;
    }
    return true;
  }

  function lock() {
    root.dataset.state = "locked";
    $("operator-panels").hidden = true;
  }

  // --- models -------------------------------------------------------------------------------

  async function loadModels() {
    const models = await api("/v1/models");
    $("model-serving").textContent = models.serving || "none (fallback pages)";
    const select = $("model-version");
    select.replaceChildren(...[["", "LATEST (newest)"], ...models.available.map((v) => [v, v])].map(([value, label]) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = label + (value && value === models.serving ? " (serving)" : "");
      return option;
    }));
    $("pipelines").textContent = models.pipelines.join(", ");
  }

  $("swap-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const version = $("model-version").value || null;
    status(`Loading ${version || "LATEST"}…`);
    guarded("The swap", async () => {
      const result = await api("/v1/models/swap", { method: "POST", body: { version } });
      status(`Now serving ${result.serving} (was ${result.previous}).`);
      await loadModels();
    });
  });

  // --- items: stock and image -----------------------------------------------------------------

  function itemRow(item) {
    const stock = document.createElement("input");
    stock.type = "checkbox";
    stock.checked = item.in_stock;
    stock.id = `stock-${item.item_id}`;
    stock.setAttribute("aria-label", `${item.item_id} in stock`);
    stock.addEventListener("change", () => {
      const inStock = stock.checked;
      stock.disabled = true;
      guarded("The stock update", async () => {
        await api("/v1/inventory", { method: "POST",
          body: { updates: [{ item_id: item.item_id, ts: new Date().toISOString(), in_stock: inStock }] } });
        item.in_stock = inStock;
        status(`${item.item_id} is ${inStock ? "back in stock" : "out of stock"}: pages built from now on obey it.`);
      }).then((ok) => {
        if (!ok) stock.checked = !inStock;
        stock.disabled = false;
      });
    });
    const image = document.createElement("input");
    image.type = "checkbox";
    image.checked = item.has_image;
    image.id = `image-${item.item_id}`;
    image.setAttribute("aria-label", `${item.item_id} has an image`);
    image.addEventListener("change", () => {
      const hasImage = image.checked;
      image.disabled = true;
      // PUT /v1/items takes whole ITEMS rows: the row as the catalog holds it, image flag changed.
      const row = { item_id: item.item_id, title: item.title, vertical: item.vertical, category_id: item.category_id,
        brand: item.brand, price: item.price, has_image: hasImage, image_url: item.image_url,
        in_stock: item.in_stock, created_at: item.created_at, tags: item.tags };
      guarded("The image update", async () => {
        await api("/v1/items", { method: "PUT", body: { items: [row] } });
        item.has_image = hasImage;
        status(`${item.item_id} ${hasImage ? "shows its image" : "has no image"} from now on.`);
      }).then((ok) => {
        if (!ok) image.checked = !hasImage;
        image.disabled = false;
      });
    });
    const tr = document.createElement("tr");
    tr.dataset.itemId = item.item_id;
    tr.append(cell(text("code", item.item_id)), cell(`${item.title}${item.brand ? " · " + item.brand : ""}`),
      cell(Number(item.price).toFixed(2)), cell(stock), cell(image));
    return tr;
  }

  async function searchItems() {
    const q = $("item-query").value.trim();
    const data = await api(`/web/items?${new URLSearchParams({ q, limit: "20" })}`);
    $("items-table").tBodies[0].replaceChildren(...data.items.map(itemRow));
    status(`${data.items.length} item${data.items.length === 1 ? "" : "s"} found${q ? ` for “${q}”` : ""}.`);
  }

  $("item-search").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded("The search", searchItems);
  });

  // --- collections ----------------------------------------------------------------------------

  const toLocalInput = (iso) => (iso ? iso.replace(/(\+00:00|Z)$/, "").slice(0, 16) : "");
  const fromLocalInput = (value) => (value ? `${value}:00Z` : null);

  function fillForm(c) {
    $("col-id").value = c.collection_id;
    $("col-title").value = c.title;
    $("col-items").value = c.item_ids.join(", ");
    $("col-starts").value = toLocalInput(c.starts_at);
    $("col-ends").value = toLocalInput(c.ends_at);
    $("col-pinned").value = c.pinned_row === null || c.pinned_row === undefined || c.pinned_row < 0 ? "" : c.pinned_row;
    $("collection-form-title").textContent = `Edit ${c.collection_id}`;
    $("col-title").focus();
  }

  async function loadCollections() {
    collections = (await api("/v1/collections")).collections.filter((c) => c.source === "curated");
    const rows = collections.map((c) => {
      const tr = document.createElement("tr");
      tr.dataset.collectionId = c.collection_id;
      const shown = c.starts_at || c.ends_at ? `${c.starts_at || "…"} – ${c.ends_at || "…"}` : "always";
      const pinned = c.pinned_row === null || c.pinned_row === undefined || c.pinned_row < 0 ? "–" : String(c.pinned_row);
      const actions = cell(button(`Edit`, () => fillForm(c)), " ", button(`Delete`, () => {
        if (!confirm(`Delete the collection ${c.collection_id}?`)) return;
        guarded("The delete", async () => {
          await api(`/v1/collections/${encodeURIComponent(c.collection_id)}`, { method: "DELETE" });
          status(`Deleted ${c.collection_id}.`);
          await loadCollections();
        });
      }));
      actions.querySelectorAll("button").forEach((b, k) => b.setAttribute("aria-label",
        `${k === 0 ? "Edit" : "Delete"} ${c.collection_id}`));
      tr.append(cell(text("code", c.collection_id)), cell(c.title), cell(String(c.item_ids.length)), cell(shown),
        cell(pinned), actions);
      return tr;
    });
    $("collections-table").tBodies[0].replaceChildren(...rows);
  }

  $("collection-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("col-id").value.trim();
    const pinned = $("col-pinned").value;
    const body = {
      title: $("col-title").value.trim(),
      item_ids: $("col-items").value.split(/[\s,]+/).filter(Boolean),
      starts_at: fromLocalInput($("col-starts").value),
      ends_at: fromLocalInput($("col-ends").value),
      pinned_row: pinned === "" ? null : Number(pinned),
    };
    guarded("Saving the collection", async () => {
      await api(`/v1/collections/${encodeURIComponent(id)}`, { method: "PUT", body });
      status(`Saved ${id}: ${body.item_ids.length} items${body.pinned_row === null ? "" : `, pinned at row ${body.pinned_row}`}.`);
      await loadCollections();
    });
  });
  $("collection-form").addEventListener("reset", () => {
    $("collection-form-title").textContent = "Create or edit a collection";
  });

  // --- metrics --------------------------------------------------------------------------------

  const COUNTERS = {
    shelfrank_rule_actions_total: "rule actions",
    shelfrank_pages_total: "pages",
    shelfrank_fallback_pages_total: "fallback pages",
    shelfrank_events_total: "events",
    shelfrank_model_swaps_total: "model swaps",
  };

  async function loadMetrics() {
    const response = await fetch("/metrics");
    const lines = (await response.text()).split("\n");
    const rows = [];
    for (const line of lines) {
      const m = line.match(/^(\w+)(?:\{([^}]*)\})?\s+([-+0-9.eE]+|NaN)$/);
      if (!m || !(m[1] in COUNTERS)) continue;
      const tr = document.createElement("tr");
      const labels = (m[2] || "").replace(/"/g, "").replace(/,/g, ", ");
      tr.append(cell(COUNTERS[m[1]]), cell(labels || "–"), cell(String(Number(m[3]))));
      if (m[1] === "shelfrank_rule_actions_total") tr.className = "rule-count";
      rows.push(tr);
    }
    $("metrics-table").tBodies[0].replaceChildren(...rows);
  }

  $("metrics-refresh").addEventListener("click", () => guarded("Reading /metrics", loadMetrics));

  // --- unlock -------------------------------------------------------------------------------

  async function unlock() {
    status("Checking the token…");
    const ok = await guarded("Unlocking", async () => {
      await loadModels();
      await Promise.all([loadCollections(), searchItems(), loadMetrics()]);
    });
    if (ok) {
      sessionStorage.setItem(TOKEN_KEY, token);
      $("operator-panels").hidden = false;
      root.dataset.state = "ready";
      status("Unlocked: changes apply to the next page built.");
    }
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    token = $("admin-token").value;
    unlock();
  });

  if (token) unlock();
})();
