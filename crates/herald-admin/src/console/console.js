// The Herald console: plain JavaScript over the admin API. The session cookie set at sign-in
// authenticates every call; the API enforces what each caller may see and change.
"use strict";

const state = { caller: null, app: null, deliveriesCursor: null, letters: [], editing: null };

const $ = (selector) => document.querySelector(selector);
const text = (value) => (value === null || value === undefined ? "" : String(value));
const time = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "");

function cell(row, value, className) {
  const td = document.createElement("td");
  td.textContent = text(value);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

async function api(method, path, body) {
  const init = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const raw = await response.text();
  const value = raw ? JSON.parse(raw) : null;
  if (!response.ok) {
    const where = value && value.field ? value.field + ": " : "";
    throw new Error(where + (value ? value.message : response.statusText));
  }
  return value;
}

function show(tab) {
  document.querySelectorAll("section").forEach((s) => s.classList.toggle("active", s.id === tab));
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === tab));
  const load = { subscriptions: loadSubscriptions, deliveries: () => loadDeliveries(true),
    "dead-letters": loadDeadLetters, app: loadApp, catalogue: loadCatalogue }[tab];
  if (load) load().catch((e) => console.error(e));
}

async function start() {
  let apps;
  try {
    apps = await api("GET", "/v1/apps");
  } catch (e) {
    show("login");
    return;
  }
  const session = await api("GET", "/console/session");
  state.caller = session.caller;
  $("#who").textContent = session.caller === "operator" ? "operator" : "app " + session.app_id;
  $("#tabs").hidden = false;
  const select = $("#app-select");
  select.innerHTML = "";
  for (const app of apps.data) {
    const option = document.createElement("option");
    option.value = app.app_id;
    option.textContent = app.app_id + " — " + app.name;
    select.appendChild(option);
  }
  state.app = session.app_id || (apps.data[0] && apps.data[0].app_id) || null;
  select.value = state.app || "";
  $("#app-picker").hidden = session.caller !== "operator";
  $("#create-app-form").hidden = session.caller !== "operator";
  show("subscriptions");
}

async function loadSubscriptions() {
  const query = state.caller === "operator" && state.app ? "?app_id=" + encodeURIComponent(state.app) : "";
  const page = await api("GET", "/v1/subscriptions" + query);
  const body = $("#subscriptions-table tbody");
  body.innerHTML = "";
  for (const sub of page.data) {
    const row = document.createElement("tr");
    row.dataset.id = sub.subscription_id;
    cell(row, sub.subscription_id);
    cell(row, sub.event_types.join(", "));
    cell(row, sub.channel);
    cell(row, sub.destination.address);
    cell(row, sub.filter);
    cell(row, sub.enabled ? "yes" : "no");
    const actions = cell(row, "");
    const button = (label, action) => {
      const b = document.createElement("button");
      b.textContent = label;
      b.dataset.action = label.toLowerCase().replace(/ /g, "-");
      b.onclick = () => action().catch((e) => alert(e.message));
      actions.appendChild(b);
    };
    button("Test send", async () => {
      const result = await api("POST", "/v1/subscriptions/" + encodeURIComponent(sub.subscription_id) + "/test", {});
      const box = $("#test-result");
      box.hidden = false;
      box.textContent = "Test send to " + sub.destination.address + ": " + result.outcome +
        (result.response_code ? " (HTTP " + result.response_code + ")" : "") + (result.error ? " — " + result.error : "");
    });
    button("Edit", async () => {
      const form = $("#subscription-form");
      form.subscription_id.value = sub.subscription_id;
      form.subscription_id.readOnly = true;
      form.event_types.value = sub.event_types.join(", ");
      form.channel.value = sub.channel;
      form.address.value = sub.destination.address;
      form.filter.value = sub.filter || "";
      state.editing = sub;
      $("#subscription-create").textContent = "Save";
      form.scrollIntoView();
    });
    button(sub.enabled ? "Disable" : "Enable", async () => {
      await api("POST", "/v1/subscriptions/" + encodeURIComponent(sub.subscription_id) + (sub.enabled ? "/disable" : "/enable"), {});
      await loadSubscriptions();
    });
    button("Delete", async () => {
      if (!confirm("Delete " + sub.subscription_id + "?")) return;
      await api("DELETE", "/v1/subscriptions/" + encodeURIComponent(sub.subscription_id));
      await loadSubscriptions();
    });
    body.appendChild(row);
  }
}

async function loadDeliveries(fresh) {
  const form = new FormData($("#deliveries-filter"));
  const params = new URLSearchParams({ limit: "50" });
  for (const [name, value] of form.entries()) if (value) params.set(name, value);
  if (state.caller === "operator" && state.app) params.set("app_id", state.app);
  if (!fresh && state.deliveriesCursor) params.set("cursor", state.deliveriesCursor);
  const page = await api("GET", "/v1/deliveries?" + params);
  const body = $("#deliveries-table tbody");
  if (fresh) body.innerHTML = "";
  for (const a of page.data) {
    const row = document.createElement("tr");
    row.dataset.notification = a.notification_id;
    cell(row, time(a.started_at));
    cell(row, a.notification_id);
    cell(row, a.subscription_id);
    cell(row, a.attempt);
    cell(row, a.status, "status-" + a.status);
    cell(row, a.response_code);
    cell(row, a.response_body, "body");
    cell(row, a.error);
    body.appendChild(row);
  }
  state.deliveriesCursor = page.next_cursor;
  $("#deliveries-more").hidden = !page.next_cursor;
}

async function loadDeadLetters() {
  const channel = new FormData($("#dead-letters-filter")).get("channel");
  const page = await api("GET", "/v1/dead-letters/" + channel + "?limit=200");
  const body = $("#dead-letters-table tbody");
  body.innerHTML = "";
  state.letters = page.data;
  for (const letter of page.data) {
    const n = letter.notification || {};
    const row = document.createElement("tr");
    row.dataset.notification = text(n.notification_id);
    cell(row, time(letter.failed_at));
    cell(row, n.notification_id);
    cell(row, n.subscription_id);
    cell(row, letter.kind);
    cell(row, letter.error, "body");
    cell(row, letter.attempts);
    const actions = cell(row, "");
    if (n.notification_id) {
      const b = document.createElement("button");
      b.textContent = "Redrive";
      b.dataset.action = "redrive";
      b.onclick = () => redrive(channel, { notification_id: n.notification_id }).catch((e) => alert(e.message));
      actions.appendChild(b);
    }
    body.appendChild(row);
  }
}

async function redrive(channel, selection) {
  const result = await api("POST", "/v1/dead-letters/" + channel + "/redrive", selection);
  $("#redrive-result").textContent = result.redriven + " notification(s) sent back for delivery";
}

async function loadApp() {
  const box = $("#app-details");
  if (!state.app) {
    box.textContent = "No app yet.";
    return;
  }
  const app = await api("GET", "/v1/apps/" + encodeURIComponent(state.app));
  box.innerHTML = "";
  const title = document.createElement("h3");
  title.textContent = app.name + " (" + app.app_id + "), version " + app.version;
  box.appendChild(title);
  const secrets = document.createElement("p");
  secrets.textContent = "Signing secrets: " + app.signing_secrets.map((s) =>
    s.secret_id + (s.expires_at ? " (until " + time(s.expires_at) + ")" : " (current)")).join(", ");
  box.appendChild(secrets);
  const keys = document.createElement("p");
  keys.textContent = "API keys: " + app.api_keys.map((k) => k.key_id + (k.revoked_at ? " (revoked)" : "")).join(", ");
  box.appendChild(keys);
}

async function loadCatalogue() {
  const types = await api("GET", "/v1/event-types");
  const list = $("#catalogue-list");
  list.innerHTML = "";
  for (const t of types) {
    const card = document.createElement("div");
    card.className = "card";
    const h = document.createElement("h3");
    h.textContent = t.event_type;
    const p = document.createElement("p");
    p.textContent = t.description || "";
    const example = document.createElement("pre");
    example.textContent = JSON.stringify(t.example, null, 2);
    const schema = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = "JSON Schema";
    const pre = document.createElement("pre");
    pre.textContent = JSON.stringify(t.json_schema, null, 2);
    schema.append(summary, pre);
    card.append(h, p, example, schema);
    list.appendChild(card);
  }
}

$("#login-form").onsubmit = async (event) => {
  event.preventDefault();
  $("#login-error").textContent = "";
  try {
    await api("POST", "/console/session", { key: $("#login-key").value.trim() });
    await start();
  } catch (e) {
    $("#login-error").textContent = e.message;
  }
};

$("#subscription-form").onsubmit = async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = {
    event_types: form.get("event_types").split(",").map((s) => s.trim()).filter(Boolean),
    channel: form.get("channel"),
    destination: { address: form.get("address") },
  };
  if (form.get("subscription_id")) body.subscription_id = form.get("subscription_id");
  if (form.get("filter")) body.filter = form.get("filter");
  if (state.caller === "operator") body.app_id = state.app;
  $("#subscription-error").textContent = "";
  try {
    if (state.editing) {
      // A replacement keeps what the form does not show (transform, retries, ordering, …).
      const kept = state.editing;
      for (const field of ["tenant_scope", "transform", "retry_schedule_ms", "ordering", "digest", "enabled"]) {
        if (kept[field] !== null && kept[field] !== undefined) body[field] = kept[field];
      }
      body.destination = { ...kept.destination, address: body.destination.address };
      body.app_id = kept.app_id;
      if (!form.get("filter")) delete body.filter;
      await api("PUT", "/v1/subscriptions/" + encodeURIComponent(kept.subscription_id), body);
    } else {
      await api("POST", "/v1/subscriptions", body);
    }
    state.editing = null;
    event.target.subscription_id.readOnly = false;
    $("#subscription-create").textContent = "Create";
    event.target.reset();
    await loadSubscriptions();
  } catch (e) {
    $("#subscription-error").textContent = e.message;
  }
};

$("#deliveries-filter").onsubmit = (event) => {
  event.preventDefault();
  loadDeliveries(true).catch((e) => alert(e.message));
};
$("#deliveries-more").onclick = () => loadDeliveries(false).catch((e) => alert(e.message));
$("#dead-letters-filter").onsubmit = (event) => {
  event.preventDefault();
  loadDeadLetters().catch((e) => alert(e.message));
};
$("#redrive-all").onclick = async () => {
  const channel = new FormData($("#dead-letters-filter")).get("channel");
  try {
    await redrive(channel, {});
    await loadDeadLetters();
  } catch (e) {
    alert(e.message);
  }
};
$("#rotate-form").onsubmit = async (event) => {
  event.preventDefault();
  const overlap = Number(new FormData(event.target).get("overlap_seconds"));
  try {
    const r = await api("POST", "/v1/apps/" + encodeURIComponent(state.app) + "/secrets/rotate", { overlap_seconds: overlap });
    $("#rotate-result").textContent = "New secret " + r.secret_id + ": " + r.signing_secret + " (shown once)";
    await loadApp();
  } catch (e) {
    $("#rotate-result").textContent = e.message;
  }
};
$("#create-app-form").onsubmit = async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = { name: form.get("name") };
  if (form.get("app_id")) body.app_id = form.get("app_id");
  try {
    const created = await api("POST", "/v1/apps", body);
    $("#create-app-result").textContent = "API key " + created.api_key + ", signing secret " + created.signing_secret + " (shown once)";
    await start();
  } catch (e) {
    $("#create-app-result").textContent = e.message;
  }
};
$("#app-select").onchange = (event) => {
  state.app = event.target.value;
  loadSubscriptions().catch((e) => console.error(e));
};
document.querySelectorAll("#tabs button").forEach((b) => (b.onclick = () => show(b.dataset.tab)));

start();
