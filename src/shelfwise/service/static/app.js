// shelfwise's web page: plain JavaScript over the /v1 API, no build step.
// Every text from the API goes into the page through textContent, never as HTML.
"use strict";

const state = { shopper: null, query: "", selected: null, eventsKey: "", money: null };
const $ = (selector, root = document) => root.querySelector(selector);

// ------------------------------------------------------------------------------------ the API
function apiKey() {
  return localStorage.getItem("shelfwise.apiKey") || "";
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  // the admin key where this browser holds one; events go with the events key otherwise (a shop's
  // page holds only that one: it may post events and nothing else)
  const key = apiKey() || (options.events ? state.eventsKey : "");
  if (key) headers.Authorization = `Bearer ${key}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method: options.method || "GET",
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  } catch (error) {
    throw new Error(`The service did not answer (${error.message}).`);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = body.message || response.statusText || "request failed";
    const hint = response.status === 401 ? " Enter the API key (top right)." : "";
    const error = new Error(`${message}${hint}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

const encode = encodeURIComponent;

// ------------------------------------------------------------------------------------ rendering
function setState(section, text, kind = "") {
  const node = $(".state", section);
  node.textContent = text;
  node.dataset.kind = kind;
}

function formatPrice(price) {
  if (price === null || price === undefined) return "";
  return state.money ? state.money.format(Number(price)) : Number(price).toFixed(2);
}

function card(item) {
  const li = document.createElement("li");
  li.className = "card";
  li.dataset.itemId = item.item_id;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "card-open";
  button.dataset.itemId = item.item_id;
  const title = document.createElement("span");
  title.className = "title";
  title.textContent = item.title || item.item_id;
  const meta = document.createElement("span");
  meta.className = "meta";
  const category = document.createElement("span");
  category.className = "category";
  category.textContent = item.category || "";  // a shop without categories shows none, not a label on every card
  const price = document.createElement("span");
  price.className = "price";
  price.textContent = formatPrice(item.price);
  meta.append(category, price);
  button.append(title, meta);
  if (item.in_stock === false) {
    const stock = document.createElement("span");
    stock.className = "badge";
    stock.textContent = "out of stock";
    button.append(stock);
  }
  const reason = document.createElement("span");
  reason.className = "reason";
  reason.textContent = item.reason ? item.reason.text : "";
  button.append(reason);
  button.setAttribute("aria-label", `${title.textContent}, ${category.textContent}, ${price.textContent}. ${reason.textContent}`);
  button.addEventListener("click", () => openItem(item));
  li.append(button);
  return li;
}

function showItems(section, items, emptyText) {
  const list = $(".cards", section);
  // a keyboard user whose focus was on a card keeps their place when the list is redrawn
  const before = [...list.querySelectorAll(".card-open")].indexOf(document.activeElement);
  list.replaceChildren(...items.map(card));
  const buttons = list.querySelectorAll(".card-open");
  if (before >= 0 && buttons.length) buttons[Math.min(before, buttons.length - 1)].focus();
  section.dataset.loaded = String(Date.now());
  setState(section, items.length ? "" : emptyText, items.length ? "" : "empty");
}

async function load(section, path, emptyText) {
  section.hidden = false;
  section.setAttribute("aria-busy", "true");
  setState(section, "Loading…", "loading");
  try {
    const body = await api(path);
    showItems(section, body.items, emptyText);
    return body;
  } catch (error) {
    $(".cards", section).replaceChildren();
    setState(section, error.message, "error");
    return null;
  } finally {
    section.removeAttribute("aria-busy");
  }
}

function notice(text, kind = "") {
  const node = $("#notice");
  node.textContent = text;
  node.dataset.kind = kind;
}

// ------------------------------------------------------------------------------------ panels
async function loadRecommendations() {
  const section = $("#recommendations");
  if (!state.shopper) {
    $(".cards", section).replaceChildren();
    setState(section, "Choose a shopper to see their recommendations.");
    return;
  }
  // items the shopper has seen stay out: the one just opened is under "Similar to …" already
  const path = `/v1/users/${encode(state.shopper)}/recommendations?k=12&exclude_seen=true`;
  const body = await load(section, path, "No recommendations for this shopper.");
  if (body && body.user_known === false) {
    setState(section, `No events of ${state.shopper} yet: the most popular items, as every new shopper sees them.`);
  }
}

async function loadArrivals() {
  const section = $("#arrivals");
  if (!state.shopper) {
    section.hidden = true;
    return;
  }
  await load(section, `/v1/users/${encode(state.shopper)}/new-arrivals?k=6`, "No new arrivals in the last 30 days.");
}

async function loadSearch() {
  const section = $("#search");
  if (!state.query) {
    section.hidden = true;
    return;
  }
  const who = state.shopper ? `&user_id=${encode(state.shopper)}` : "";
  $("#search-title").textContent = state.shopper
    ? `Search results for “${state.query}”, personalised`
    : `Search results for “${state.query}”`;
  await load(section, `/v1/search?k=12&q=${encode(state.query)}${who}`, `Nothing matches “${state.query}”.`);
}

async function loadSimilar(item) {
  const name = item.title || item.item_id;
  $("#similar-title").textContent = `Similar to ${name}`;
  $("#goes-with-title").textContent = `Goes with ${name} (other categories)`;
  const path = `/v1/items/${encode(item.item_id)}/similar?k=6`;
  const goesWith = $("#goes-with");
  if (!item.category) {  // no category of its own: no other category can be told apart
    goesWith.hidden = false;
    $(".cards", goesWith).replaceChildren();
    setState(goesWith, `“${name}” has no category, so there are no other categories to suggest from.`, "empty");
    await load($("#similar"), path, "No similar items in stock.");
    return;
  }
  await Promise.all([
    load($("#similar"), path, "No similar items in stock."),
    load(goesWith, `${path}&cross_category=true`, "Nothing from other categories in stock."),
  ]);
}

function profileList(title, rows, label) {
  const box = document.createElement("div");
  const heading = document.createElement("h3");
  heading.textContent = title;
  const list = document.createElement("ul");
  list.className = "shares";
  for (const row of rows) {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = label(row);
    const bar = document.createElement("span");
    bar.className = "bar";
    const share = row.share !== undefined ? row.share : Math.max(0, row.weight);
    bar.style.setProperty("--share", String(Math.min(1, share)));
    bar.setAttribute("aria-hidden", "true");
    li.append(name, bar);
    list.append(li);
  }
  if (!rows.length) {
    const li = document.createElement("li");
    li.textContent = "none yet";
    list.append(li);
  }
  box.append(heading, list);
  return box;
}

async function loadProfile() {
  const section = $("#profile");
  const body = $(".profile-body", section);
  if (!state.shopper) {
    body.replaceChildren();
    setState(section, "No shopper chosen.");
    return;
  }
  section.setAttribute("aria-busy", "true");
  setState(section, "Loading…", "loading");
  try {
    const p = await api(`/v1/users/${encode(state.shopper)}/profile`);
    const facts = document.createElement("dl");
    const add = (term, value) => {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      facts.append(dt, dd);
    };
    add("Events", `${p.activity.events} (${Object.entries(p.activity.by_type).map(([k, v]) => `${v} ${k}`).join(", ")})`);
    add("Seen", `${(p.activity.first_seen || "").slice(0, 10)} – ${(p.activity.last_seen || "").slice(0, 10)}`);
    if (p.price_band) {
      add("Price band", `${p.price_band.level}: ${formatPrice(p.price_band.low)}–${formatPrice(p.price_band.high)}`);
    }
    if (p.segment) add("Segment", `${p.segment.segment_id}: ${p.segment.name}`);
    const intent = p.recent_intent.items.map((i) => i.title).slice(0, 3).join("; ");
    add("Right now", intent || "nothing this session");
    body.replaceChildren(
      facts,
      profileList("Interests", p.keywords.slice(0, 8), (r) => r.term),
      profileList("Categories", p.categories, (r) => `${r.name} (${Math.round(r.share * 100)}%)`),
      profileList("Brands", p.brands, (r) => `${r.name} (${Math.round(r.share * 100)}%)`),
    );
    section.dataset.loaded = String(Date.now());
    setState(section, "");
  } catch (error) {
    body.replaceChildren();
    setState(section, error.message, "error");
  } finally {
    section.removeAttribute("aria-busy");
  }
}

// ------------------------------------------------------------------------------------ actions
async function openItem(item) {
  state.selected = item;
  const jobs = [loadSimilar(item)];
  if (state.shopper) {
    try {
      await api("/v1/events", {
        method: "POST",
        events: true,
        body: { user_id: state.shopper, item_id: item.item_id, event_type: "view" },
      });
      notice(`Recorded: ${state.shopper} viewed “${item.title || item.item_id}”.`);
      jobs.push(loadRecommendations(), loadProfile(), loadArrivals());
      if (state.query) jobs.push(loadSearch());
    } catch (error) {
      notice(`Could not record the view: ${error.message}`, "error");
    }
  }
  await Promise.all(jobs);
}

async function chooseShopper(id) {
  state.shopper = id || null;
  const url = new URL(window.location.href);
  if (state.shopper) url.searchParams.set("user", state.shopper);
  else url.searchParams.delete("user");
  history.replaceState(null, "", url);
  $("#recommendations-title").textContent = state.shopper ? `Recommended for ${state.shopper}` : "Recommended for you";
  $("#similar").hidden = true;
  $("#goes-with").hidden = true;
  notice("");
  await Promise.all([loadRecommendations(), loadProfile(), loadArrivals(), loadSearch()]);
}

let suggestTimer = null;
function suggestShoppers() {
  clearTimeout(suggestTimer);
  suggestTimer = setTimeout(async () => {
    try {
      const prefix = $("#shopper").value.trim();
      const body = await api(`/v1/users?limit=20&prefix=${encode(prefix)}`);
      $("#shopper-list").replaceChildren(
        ...body.users.map((u) => {
          const option = document.createElement("option");
          option.value = u.user_id;
          option.label = `${u.user_id} · ${u.events} events`;
          return option;
        }),
      );
    } catch (error) {
      // suggestions are a convenience: typing an id still works
    }
  }, 150);
}

async function addProduct(event) {
  event.preventDefault();
  const form = event.target;
  const section = form.closest("section");
  const data = new FormData(form);
  const id = String(data.get("item_id")).trim();
  const price = String(data.get("price") || "").trim();
  const item = {
    title: String(data.get("title")).trim(),
    category: String(data.get("category") || "").trim(),
    brand: String(data.get("brand") || "").trim(),
    description: String(data.get("description") || "").trim(),
    tags: String(data.get("tags") || "").split(",").map((t) => t.trim()).filter(Boolean),
    in_stock: $("#item-stock").checked,
    price: price === "" ? null : Number(price),
  };
  setState(section, "Saving…", "loading");
  try {
    const result = await api(`/v1/items/${encode(id)}`, { method: "PUT", body: item });
    setState(section, `${result.created ? "Added" : "Updated"} ${id}. It is recommendable now.`, "done");
    form.reset();  // ready for the next product
    $("#q").value = item.title;
    state.query = item.title;
    await Promise.all([loadSearch(), loadRecommendations(), loadArrivals()]);
  } catch (error) {
    setState(section, error.message, "error");
  }
}

async function showModel() {
  try {
    const health = await api("/v1/model");
    $("#model").textContent = `${health.model} · ${health.items} items · version ${health.model_version}`;
  } catch (error) {
    $("#model").textContent = "The service is not answering.";
  }
}

// ------------------------------------------------------------------------------------ collapsing
// Every panel can be folded to its title (remembered in this browser); on a phone "Add a product"
// starts folded, until the shopper opens it once.
const FOLDED = "shelfwise.folded";

function foldedPanels() {
  const saved = localStorage.getItem(FOLDED);
  if (saved !== null) return new Set(JSON.parse(saved));
  return new Set(window.matchMedia("(max-width: 760px)").matches ? ["admin"] : []);
}

function fold(section, folded) {
  section.dataset.folded = String(folded);
  const button = $(".fold", section);
  const name = $("h2", section).textContent;
  button.setAttribute("aria-expanded", String(!folded));
  button.setAttribute("aria-label", `${folded ? "Show" : "Hide"} ${name}`);
  button.textContent = folded ? "Show" : "Hide";
}

function setUpCollapsing() {
  const folded = foldedPanels();
  for (const section of document.querySelectorAll("section.panel")) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "fold quiet";
    button.setAttribute("aria-controls", section.id);
    button.addEventListener("click", () => {
      const now = section.dataset.folded !== "true";
      fold(section, now);
      const saved = foldedPanels();
      if (now) saved.add(section.id);
      else saved.delete(section.id);
      localStorage.setItem(FOLDED, JSON.stringify([...saved]));
    });
    section.prepend(button);
    fold(section, folded.has(section.id));
  }
}

// ------------------------------------------------------------------------------------ start
document.addEventListener("DOMContentLoaded", () => {
  $("#api-key").value = apiKey();
  api("/v1/page-config")
    .then((config) => {
      state.eventsKey = config.events_key || "";
      if (config.currency) {
        state.money = new Intl.NumberFormat(undefined, { style: "currency", currency: config.currency });
      }
    })
    .catch(() => {});
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem("shelfwise.apiKey", $("#api-key").value.trim());
    $("details.key").open = false;
    notice("API key saved in this browser.");
  });
  setUpCollapsing();
  $("#shopper-form").addEventListener("submit", (event) => {
    event.preventDefault();
    chooseShopper($("#shopper").value.trim());
  });
  $("#shopper-clear").addEventListener("click", () => {
    $("#shopper").value = "";
    chooseShopper("");
  });
  $("#shopper").addEventListener("input", suggestShoppers);
  $("#search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.query = $("#q").value.trim();
    if (!state.query) {
      notice("Type a few words to search for.", "error");
      $("#search").hidden = true;
      return;
    }
    notice("");
    loadSearch();
  });
  $("#item-form").addEventListener("submit", addProduct);
  suggestShoppers();
  showModel();
  const start = new URL(window.location.href).searchParams.get("user");
  if (start) {
    $("#shopper").value = start;
    chooseShopper(start);
  }
});
