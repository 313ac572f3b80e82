// The vpcflow web console: a client of the public API and nothing else.
//
// Signed in with a project token (session storage, sent as X-Auth-Token),
// it can show no more than that project's. The whole view (page, log
// topic, time range, search) is in the URL's fragment, so a view can be
// shared: #/records?group=G&topic=T&range=1h&search=action:REJECT.
// Text from the API is only ever set as text (never as markup).
"use strict";

(() => {
  const main = document.getElementById("main");
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  const status = document.getElementById("status");
  const PAGE = 50;
  const VIEWS = {
    "flow-logs": { title: "Flow logs", render: flowLogsView },
    records: { title: "Records", render: recordsView },
    charts: { title: "Charts", render: chartsView },
    security: { title: "Security", render: securityView },
  };
  // The parameters a view's scope is made of, carried from view to view.
  const SCOPE = ["group", "topic", "range", "since", "until", "search"];
  const RANGES = [
    ["15m", "Last 15 minutes"], ["1h", "Last hour"], ["24h", "Last 24 hours"],
    ["7d", "Last 7 days"], ["all", "All time"], ["custom", "Custom"],
  ];
  let fields = [];
  // Stops what the current view left running (a live tail).
  let leaving = new AbortController();

  // ---- elements -------------------------------------------------------

  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "class") e.className = v;
      else if (v === true) e.setAttribute(k, "");
      else e.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c == null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function say(text) {
    status.textContent = text;
  }

  function problem(err) {
    const text = err instanceof ApiError ? `${err.code}: ${err.message}` : String(err.message || err);
    return h("p", { class: "error", role: "alert" }, text);
  }

  function field(label, control, hint) {
    return h("label", { class: "field" }, h("span", {}, label), control, hint ? h("small", {}, hint) : null);
  }

  function when(seconds) {
    if (seconds == null) return "";
    return new Date(seconds * 1000).toISOString().replace(".000Z", "Z");
  }

  // ---- the API ---------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function session() {
    const token = sessionStorage.getItem("vpcflow.token");
    const project = sessionStorage.getItem("vpcflow.project");
    return token && project ? { token, project } : null;
  }

  async function call(path, options = {}) {
    const s = session();
    const headers = { Accept: "application/json" };
    if (options.token || s) headers["X-Auth-Token"] = options.token || s.token;
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    // A project runs two queries at once; a third waits its turn.
    for (let attempt = 0; ; attempt++) {
      const r = await fetch(path, {
        method: options.method || "GET",
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: options.signal,
      });
      const text = await r.text();
      let json = null;
      try {
        json = text ? JSON.parse(text) : null;
      } catch (_) {
        json = null;
      }
      if (r.status === 429 && json && json.code === "VPC.0429" && attempt < 20) {
        await new Promise(done => setTimeout(done, 250));
        continue;
      }
      if (!r.ok) {
        const e = new ApiError(r.status, (json && json.code) || `HTTP ${r.status}`, (json && json.message) || text);
        if (r.status === 401 && !options.token) signOut(`${e.code}: ${e.message}`);
        throw e;
      }
      return json;
    }
  }

  const project = () => session().project;
  const base = () => `/v1/${encodeURIComponent(project())}`;
  const topicPath = (g, t) =>
    `${base()}/log-groups/${encodeURIComponent(g)}/log-topics/${encodeURIComponent(t)}`;

  // Every log topic of the project, with its group: [{group, topic, label}].
  async function topics() {
    const groups = (await call(`${base()}/log-groups`)).log_groups;
    const all = [];
    for (const g of groups) {
      const ts = (await call(`${base()}/log-groups/${encodeURIComponent(g.id)}/log-topics`)).log_topics;
      for (const t of ts) all.push({ group: g, topic: t, label: `${g.name || g.id} / ${t.name || t.id}` });
    }
    return all;
  }

  // The API's time parameters for a scope.
  function timeParams(p) {
    const q = new URLSearchParams();
    const range = p.get("range") || "1h";
    if (range === "custom") {
      if (p.get("since")) q.set("since", p.get("since"));
      if (p.get("until")) q.set("until", p.get("until"));
    } else if (range !== "all") {
      q.set("last", range);
    }
    return q;
  }

  async function records(p, extra) {
    const q = timeParams(p);
    for (const [k, v] of Object.entries(extra)) if (v != null && v !== "") q.set(k, v);
    return call(`${topicPath(p.get("group"), p.get("topic"))}/records?${q}`);
  }

  // The rows of an SQL query over the scope's records (search applied).
  async function sql(p, text) {
    return (await records(p, { search: p.get("search"), sql: text, limit: 10000 })).records;
  }

  // ---- navigation --------------------------------------------------------

  function current() {
    const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
    return { view: VIEWS[path] ? path : "flow-logs", params: new URLSearchParams(query || "") };
  }

  function link(view, params) {
    const q = params.toString();
    return `#/${view}${q ? "?" + q : ""}`;
  }

  function go(view, params) {
    const target = link(view, params);
    if (location.hash === target) render();
    else location.hash = target;
  }

  function scopeOf(params) {
    const q = new URLSearchParams();
    for (const k of SCOPE) if (params.get(k)) q.set(k, params.get(k));
    return q;
  }

  function drawNav(view, params) {
    nav.replaceChildren();
    if (!session()) {
      nav.hidden = true;
      who.replaceChildren();
      return;
    }
    nav.hidden = false;
    const scope = scopeOf(params);
    for (const [name, v] of Object.entries(VIEWS)) {
      const a = h("a", { href: link(name, name === "flow-logs" ? new URLSearchParams() : scope) }, v.title);
      if (name === view) a.setAttribute("aria-current", "page");
      nav.append(a);
    }
    who.replaceChildren(
      h("span", { class: "project", title: "project" }, project()),
      h("button", { type: "button", class: "link", onclick: () => signOut("Signed out.") }, "Sign out"),
    );
  }

  async function render() {
    leaving.abort();
    leaving = new AbortController();
    const { view, params } = current();
    // Set once the view is drawn (or has failed): what a test waits for.
    delete main.dataset.ready;
    drawNav(view, params);
    if (!session()) {
      signInView();
      return;
    }
    document.title = `${VIEWS[view].title} · vpcflow`;
    main.replaceChildren(h("h1", {}, VIEWS[view].title), h("p", { class: "muted" }, "Loading…"));
    try {
      const body = await VIEWS[view].render(params, leaving.signal);
      if (leaving.signal.aborted && body === undefined) return;
      main.replaceChildren(h("h1", {}, VIEWS[view].title), ...[body].flat());
    } catch (err) {
      if (err.name === "AbortError") return;
      main.replaceChildren(h("h1", {}, VIEWS[view].title), problem(err));
    }
    main.dataset.ready = view;
  }

  // ---- sign in -------------------------------------------------------------

  function signOut(why) {
    sessionStorage.removeItem("vpcflow.token");
    sessionStorage.removeItem("vpcflow.project");
    render();
    if (why) say(why);
  }

  function signInView() {
    document.title = "Sign in · vpcflow";
    const token = h("input", { id: "token", type: "password", autocomplete: "off", required: true });
    const out = h("div", { "aria-live": "polite" });
    const form = h("form", {
      class: "card narrow",
      onsubmit: async e => {
        e.preventDefault();
        out.replaceChildren();
        try {
          const r = await call("/v1/auth/token", { token: token.value.trim() });
          sessionStorage.setItem("vpcflow.token", token.value.trim());
          sessionStorage.setItem("vpcflow.project", r.token.project.id);
          say(`Signed in to project ${r.token.project.id}.`);
          render();
        } catch (err) {
          out.replaceChildren(problem(err));
        }
      },
    },
      h("h1", {}, "Sign in"),
      h("p", {}, "With a project token (", h("code", {}, "vpcflow token create --project ID"), "). It is kept in this tab only."),
      field("Project token", token),
      h("button", { type: "submit", id: "sign-in" }, "Sign in"),
      out,
    );
    main.replaceChildren(form);
    main.dataset.ready = "sign-in";
    token.focus();
  }

  // ---- flow logs -----------------------------------------------------------

  async function flowLogsView() {
    const [logs, quotas, groups, ports, subnets, vpcs] = await Promise.all([
      call(`${base()}/fl/flow_logs`),
      call(`${base()}/quotas?type=flow_log`),
      call(`${base()}/log-groups`),
      call(`${base()}/ports`),
      call(`${base()}/subnets`),
      call(`${base()}/vpcs`),
    ]);
    const quota = quotas.quotas.resources.find(r => r.type === "flow_log");
    const all = await topics();
    const topicName = new Map(all.map(t => [t.topic.id, t.label]));
    const resources = { port: ports.ports, network: subnets.subnets, vpc: vpcs.vpcs };
    const resourceName = new Map(Object.values(resources).flat().map(r => [r.id, r.name || r.id]));
    const out = h("div", { "aria-live": "polite" });

    const rows = logs.flow_logs.map(f => {
      const name = h("td", { class: "name" }, f.name);
      const actions = h("td", { class: "actions" });
      const scope = new URLSearchParams({ group: f.log_group_id, topic: f.log_topic_id, range: "all" });
      const rename = () => {
        const input = h("input", { value: f.name, "aria-label": `New name of ${f.name}` });
        const save = async e => {
          e.preventDefault();
          try {
            await call(`${base()}/fl/flow_logs/${f.id}`, { method: "PUT", body: { flow_log: { name: input.value } } });
            say(`Flow log renamed to ${input.value}.`);
            render();
          } catch (err) {
            out.replaceChildren(problem(err));
          }
        };
        name.replaceChildren(h("form", { class: "inline", onsubmit: save }, input,
          h("button", { type: "submit" }, "Save"),
          h("button", { type: "button", onclick: () => render() }, "Cancel")));
        input.focus();
      };
      const toggle = async () => {
        try {
          await call(`${base()}/fl/flow_logs/${f.id}`, { method: "PUT", body: { flow_log: { admin_state: !f.admin_state } } });
          say(`Flow log ${f.name} ${f.admin_state ? "disabled" : "enabled"}.`);
          render();
        } catch (err) {
          out.replaceChildren(problem(err));
        }
      };
      const remove = e => {
        const confirm = h("button", {
          type: "button", class: "danger", onclick: async () => {
            try {
              await call(`${base()}/fl/flow_logs/${f.id}`, { method: "DELETE" });
              say(`Flow log ${f.name} deleted.`);
              render();
            } catch (err) {
              out.replaceChildren(problem(err));
            }
          },
        }, `Delete ${f.name}`);
        e.target.replaceWith(confirm, h("button", { type: "button", onclick: () => render() }, "Keep"));
        confirm.focus();
      };
      actions.append(
        h("a", { href: link("records", scope) }, "Records"),
        h("button", { type: "button", onclick: rename }, "Rename"),
        h("button", { type: "button", onclick: toggle }, f.admin_state ? "Disable" : "Enable"),
        h("button", { type: "button", class: "danger", onclick: remove }, "Delete"),
      );
      return h("tr", { "data-id": f.id },
        name,
        h("td", {}, h("span", { class: "muted" }, f.resource_type), " ", resourceName.get(f.resource_id) || f.resource_id),
        h("td", {}, f.traffic_type),
        h("td", {}, topicName.get(f.log_topic_id) || f.log_topic_id),
        h("td", {}, h("span", { class: `badge ${f.status.toLowerCase()}` }, f.status)),
        actions);
    });

    const table = logs.flow_logs.length
      ? h("div", { class: "scroll" }, h("table", { id: "flow-logs" },
        h("thead", {}, h("tr", {}, ["Name", "Resource", "Traffic", "Log group / topic", "Status", ""].map(t => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows)))
      : h("p", { class: "muted" }, "No flow logs yet.");

    return [
      h("p", { id: "quota", class: "quota", "data-used": quota.used, "data-quota": quota.quota },
        `${quota.used} of ${quota.quota} flow logs used in this project.`),
      out,
      table,
      createForm(resources, groups.log_groups, all, quota, out),
    ];
  }

  function createForm(resources, groups, all, quota, out) {
    const select = (id, options) => h("select", { id }, options.map(([v, t]) => h("option", { value: v }, t)));
    const type = select("new-resource-type", [["port", "Port"], ["network", "Subnet"], ["vpc", "VPC"]]);
    const resource = h("select", { id: "new-resource" });
    const fill = () => resource.replaceChildren(...resources[type.value].map(r =>
      h("option", { value: r.id }, r.name ? `${r.name} (${r.id})` : r.id)));
    type.addEventListener("change", fill);
    fill();
    const traffic = select("new-traffic", [["all", "All traffic"], ["accept", "Accepted only"], ["reject", "Rejected only"]]);
    const topic = select("new-topic", all.map(t => [`${t.group.id}\t${t.topic.id}`, t.label]));
    const name = h("input", { id: "new-name", required: true, maxlength: 64 });
    const description = h("input", { id: "new-description" });
    const full = quota.used >= quota.quota;
    return h("form", {
      class: "card",
      id: "create-flow-log",
      onsubmit: async e => {
        e.preventDefault();
        const [group, t] = topic.value.split("\t");
        try {
          const r = await call(`${base()}/fl/flow_logs`, {
            method: "POST",
            body: {
              flow_log: {
                name: name.value, description: description.value, resource_type: type.value,
                resource_id: resource.value, traffic_type: traffic.value, log_group_id: group, log_topic_id: t,
              },
            },
          });
          say(`Flow log ${r.flow_log.name} created.`);
          render();
        } catch (err) {
          out.replaceChildren(problem(err));
          out.scrollIntoView();
        }
      },
    },
      h("h2", {}, "Create a flow log"),
      full ? h("p", { class: "muted" }, "The quota is used up: delete a flow log first.") : null,
      h("div", { class: "grid" },
        field("Name", name), field("Description", description), field("Resource type", type),
        field("Resource", resource), field("Traffic", traffic), field("Log group / topic", topic)),
      groups.length ? null : h("p", { class: "muted" }, "This project has no log group yet."),
      h("button", { type: "submit", id: "create" }, "Create"));
  }

  // ---- the scope: topic, range, search ---------------------------------------

  // The toolbar of the records, charts and security views. Applying it
  // changes the URL, and the URL the view.
  async function scopeBar(view, params, options = {}) {
    const all = await topics();
    if (!all.length) throw new Error("This project has no log topics yet.");
    let chosen = all.find(t => t.group.id === params.get("group") && t.topic.id === params.get("topic"));
    if (!chosen) {
      chosen = all[0];
      params.set("group", chosen.group.id);
      params.set("topic", chosen.topic.id);
    }
    if (!params.get("range")) params.set("range", "1h");
    const topic = h("select", { id: "topic" }, all.map(t =>
      h("option", { value: `${t.group.id}\t${t.topic.id}`, selected: t === chosen }, t.label)));
    const range = h("select", { id: "range" }, RANGES.map(([v, t]) =>
      h("option", { value: v, selected: v === params.get("range") }, t)));
    const since = h("input", { id: "since", value: params.get("since") || "", placeholder: "2026-12-04T10:00:00Z" });
    const until = h("input", { id: "until", value: params.get("until") || "", placeholder: "now" });
    const custom = h("span", { class: "custom", hidden: params.get("range") !== "custom" },
      field("Since (UTC)", since), field("Until (UTC)", until));
    range.addEventListener("change", () => { custom.hidden = range.value !== "custom"; });
    const search = h("input", {
      id: "search", value: params.get("search") || "", spellcheck: "false", autocomplete: "off",
      placeholder: "action:REJECT dstport:22", "aria-describedby": "field-names",
    });
    const suggestions = h("div", { id: "field-names", class: "suggestions", "aria-label": "Field names" });
    const suggest = () => {
      const word = search.value.slice(0, search.selectionStart).split(/[\s()]/).pop().toLowerCase();
      const matches = fields.filter(f => !word.includes(":") && f.name.startsWith(word)).slice(0, word ? 12 : 40);
      suggestions.replaceChildren(...matches.map(f => h("button", {
        type: "button", class: "chip", onclick: () => {
          const at = search.selectionStart;
          const before = search.value.slice(0, at - word.length);
          search.value = `${before}${f.name}:${search.value.slice(at)}`;
          search.focus();
          const caret = before.length + f.name.length + 1;
          search.setSelectionRange(caret, caret);
          suggest();
        },
      }, f.name)));
    };
    // Offered while the search is being written, put away after.
    search.addEventListener("input", suggest);
    search.addEventListener("focus", suggest);
    suggestions.addEventListener("focusout", e => {
      if (!suggestions.contains(e.relatedTarget) && e.relatedTarget !== search) suggestions.replaceChildren();
    });
    search.addEventListener("blur", e => {
      if (!suggestions.contains(e.relatedTarget)) suggestions.replaceChildren();
    });
    const form = h("form", {
      class: "scope card",
      onsubmit: e => {
        e.preventDefault();
        const next = new URLSearchParams(options.keep ? [...params].filter(([k]) => options.keep.includes(k)) : []);
        const [g, t] = topic.value.split("\t");
        next.set("group", g);
        next.set("topic", t);
        next.set("range", range.value);
        if (range.value === "custom") {
          if (since.value.trim()) next.set("since", since.value.trim());
          if (until.value.trim()) next.set("until", until.value.trim());
        }
        if (!options.noSearch && search.value.trim()) next.set("search", search.value.trim());
        go(view, next);
      },
    },
      h("div", { class: "row" }, field("Log topic", topic), field("Time range", range), custom,
        options.measure || null, options.noSearch ? h("button", { type: "submit", id: "apply" }, "Show") : null),
      options.noSearch ? null : h("div", { class: "row" }, field("Search", search), h("button", { type: "submit", id: "apply" }, "Search")),
      options.noSearch ? null : suggestions,
      options.extra || null);
    return form;
  }

  // ---- records ---------------------------------------------------------------------

  // The seed's v2 fields and the deciding rule; not the version and the
  // project, which are the same on every row a project sees.
  // What a reader looks at first leads; the rest follow in record order.
  const LEADING = ["start", "interface-id", "srcaddr", "srcport", "dstaddr", "dstport", "protocol", "action",
    "packets", "bytes", "direction", "log-status", "decided-by", "policy-id", "rule-id"];
  function recordColumns() {
    const shown = fields.filter(f => !["version", "project-id"].includes(f.name)
      && (f.tier !== "extension" || LEADING.includes(f.name)));
    const rank = f => (LEADING.includes(f.name) ? LEADING.indexOf(f.name) : LEADING.length);
    return shown.map((f, i) => [rank(f), i, f]).sort((a, b) => a[0] - b[0] || a[1] - b[1]).map(x => x[2]);
  }

  async function recordsView(params, signal) {
    const live = params.get("live") === "1";
    const liveBox = h("input", { type: "checkbox", id: "live", checked: live });
    liveBox.addEventListener("change", () => {
      const next = new URLSearchParams(params);
      if (liveBox.checked) next.set("live", "1");
      else next.delete("live");
      next.delete("offset");
      go("records", next);
    });
    const bar = await scopeBar("records", params, {
      extra: h("label", { class: "check" }, liveBox, " Live: follow the topic as its windows close"),
      keep: ["live"],
    });
    const holder = h("div", { id: "records-holder" });
    const liveNote = h("p", { id: "live-status", class: "muted", "aria-live": "polite" });
    const load = async () => {
      const offset = Number(params.get("offset") || 0);
      const page = await records(params, { search: params.get("search"), limit: PAGE, offset });
      holder.replaceChildren(recordsTable(page, params, offset));
    };
    await load();
    if (live) {
      liveNote.textContent = "Live: waiting for the next window to close…";
      follow(params, signal, async w => {
        liveNote.textContent = `Live: window ${when(w.start)} to ${when(w.end)} closed with ${w.records.length} records.`;
        try {
          await load();
        } catch (err) {
          holder.replaceChildren(problem(err));
        }
      }, liveNote);
    }
    return [bar, liveNote, holder];
  }

  function recordsTable(page, params, offset) {
    const cols = recordColumns();
    const rows = page.records;
    if (!rows.length) return h("p", { class: "muted", id: "no-records" }, "No records match.");
    const pager = h("nav", { class: "pager", "aria-label": "Pages" },
      h("span", { id: "page-info" }, `Records ${offset + 1} to ${offset + rows.length}`),
      offset > 0 ? h("a", { href: link("records", withParam(params, "offset", Math.max(0, offset - PAGE))) }, "Previous") : null,
      page.next_offset != null ? h("a", { id: "next-page", href: link("records", withParam(params, "offset", page.next_offset)) }, "Next") : null);
    const cell = (f, r) => {
      const v = r[f.column];
      if (v == null) return h("td", { class: "null" }, "-");
      if (f.name === "start" || f.name === "end") return h("td", { title: String(v) }, when(v));
      const td = h("td", { class: f.number ? "num" : null, title: f.name.endsWith("-id") ? String(v) : null }, v);
      if (f.name.endsWith("-id")) td.className = "id";
      if (f.name === "action") td.className = `action ${String(v).toLowerCase()}`;
      return td;
    };
    return h("div", {},
      pager,
      h("div", { class: "scroll" }, h("table", { id: "records", class: "records" },
        h("thead", {}, h("tr", {}, cols.map(f => h("th", { scope: "col" }, f.name)))),
        h("tbody", {}, rows.map(r => h("tr", {}, cols.map(f => cell(f, r))))))));
  }

  const title = word => word.charAt(0).toUpperCase() + word.slice(1);

  function withParam(params, k, v) {
    const next = new URLSearchParams(params);
    next.set(k, String(v));
    return next;
  }

  // Reads the topic's live tail (server-sent events over fetch, which can
  // send the token header) until the view is left.
  async function follow(params, signal, onWindow, note) {
    try {
      const s = session();
      const r = await fetch(`${topicPath(params.get("group"), params.get("topic"))}/tail`, {
        headers: { "X-Auth-Token": s.token, Accept: "text/event-stream" }, signal,
      });
      if (!r.ok) throw new ApiError(r.status, `HTTP ${r.status}`, await r.text());
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          if (event === "window") await onWindow(JSON.parse(data));
          if (event === "lagged") note.textContent = "Live: some windows were missed; the table shows the latest.";
        }
      }
    } catch (err) {
      if (err.name !== "AbortError") note.textContent = `Live stopped: ${err.message}`;
    }
  }

  // ---- charts -------------------------------------------------------------

  async function chartsView(params) {
    const metric = params.get("metric") === "packets" ? "packets" : "bytes";
    const unit = metric === "bytes" ? "B" : "";
    const metricBox = h("select", { id: "metric" },
      h("option", { value: "bytes", selected: metric === "bytes" }, "Bytes"),
      h("option", { value: "packets", selected: metric === "packets" }, "Packets"));
    const bar = await scopeBar("charts", params, { measure: field("Measure", metricBox), keep: ["metric"] });
    metricBox.addEventListener("change", () => go("charts", withParam(params, "metric", metricBox.value)));
    const subnets = (await call(`${base()}/subnets`)).subnets;
    const series = await sql(params,
      "SELECT start, action, direction, count(*) AS records, sum(bytes) AS bytes, sum(packets) AS packets " +
      "FROM records GROUP BY start, action, direction ORDER BY start");
    const top = (select, where, group) => sql(params,
      `SELECT ${select}, count(*) AS records, sum(bytes) AS bytes, sum(packets) AS packets FROM records ` +
      `${where} GROUP BY ${group} ORDER BY ${metric} DESC, ${group} LIMIT 10`);
    const talkers = await top("srcaddr", "WHERE srcaddr IS NOT NULL", "srcaddr");
    const conversations = await top("srcaddr, dstaddr, dstport, protocol", "WHERE srcaddr IS NOT NULL",
      "srcaddr, dstaddr, dstport, protocol");
    const rejectedSources = await top("srcaddr", "WHERE action = 'REJECT'", "srcaddr");
    const rejectedPorts = await top("dstport, protocol", "WHERE action = 'REJECT'", "dstport, protocol");
    const pairs = await sql(params,
      `SELECT srcaddr, dstaddr, direction, sum(${metric}) AS n FROM records WHERE srcaddr IS NOT NULL ` +
      "GROUP BY srcaddr, dstaddr, direction ORDER BY n DESC LIMIT 10000");

    const totals = series.reduce((t, r) => ({
      records: t.records + r.records, bytes: t.bytes + (r.bytes || 0), packets: t.packets + (r.packets || 0),
    }), { records: 0, bytes: 0, packets: 0 });
    const over = key => {
      const at = new Map();
      for (const r of series) {
        if (r[key] == null) continue;
        const p = at.get(r.start) || { t: r.start, values: {} };
        p.values[r[key]] = (p.values[r[key]] || 0) + (r[metric] || 0);
        at.set(r.start, p);
      }
      return [...at.values()];
    };
    const records = (search) => link("records", withParam(params, "search",
      [params.get("search"), search].filter(Boolean).join(" ")));
    const proto = n => ({ 1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6" }[n] || `proto ${n}`);

    const summary = h("dl", { class: "totals", id: "totals", "data-records": totals.records, "data-bytes": totals.bytes, "data-packets": totals.packets },
      h("div", {}, h("dt", {}, "Records"), h("dd", {}, totals.records.toLocaleString("en"))),
      h("div", {}, h("dt", {}, "Bytes"), h("dd", {}, Charts.human(totals.bytes, "B"))),
      h("div", {}, h("dt", {}, "Packets"), h("dd", {}, totals.packets.toLocaleString("en"))));
    const byAction = Charts.stackedBars(`${title(metric)} over time by action`, over("action"),
      [{ key: "ACCEPT", label: "ACCEPT", cls: "accept" }, { key: "REJECT", label: "REJECT", cls: "reject" }], unit);
    byAction.id = "by-action";
    const byDirection = Charts.stackedBars(`${title(metric)} over time by direction`, over("direction"),
      [{ key: "ingress", label: "ingress", cls: "ingress" }, { key: "egress", label: "egress", cls: "egress" }], unit);
    byDirection.id = "by-direction";
    const talkersChart = Charts.barList(`Top talkers (sources) by ${metric}`, talkers.map(r => ({
      label: r.srcaddr, value: r[metric], href: records(`srcaddr:${r.srcaddr}`),
    })), unit);
    talkersChart.id = "top-talkers";
    const conversationsChart = Charts.barList(`Top conversations by ${metric}`, conversations.map(r => ({
      label: `${r.srcaddr} → ${r.dstaddr}${r.dstport != null ? ":" + r.dstport : ""} ${proto(r.protocol)}`,
      value: r[metric],
      href: records(`srcaddr:${r.srcaddr} dstaddr:${r.dstaddr}${r.dstport != null ? " dstport:" + r.dstport : ""}`),
    })), unit);
    conversationsChart.id = "top-conversations";
    conversationsChart.classList.add("long-labels");
    const rejectedSourcesChart = Charts.barList("Top rejected sources (packets)", rejectedSources.map(r => ({
      label: r.srcaddr || "-", value: r.packets, cls: "reject", href: records(`action:REJECT srcaddr:${r.srcaddr}`),
    })));
    rejectedSourcesChart.id = "rejected-sources";
    const rejectedPortsChart = Charts.barList("Top rejected destination ports (packets)", rejectedPorts.map(r => ({
      label: `${r.dstport ?? "-"} ${proto(r.protocol)}`, value: r.packets, cls: "reject",
      href: records(`action:REJECT${r.dstport != null ? " dstport:" + r.dstport : ""} protocol:${r.protocol}`),
    })));
    rejectedPortsChart.id = "rejected-ports";
    const matrixChart = subnetMatrix(pairs, subnets, metric, unit);
    return [bar, summary,
      h("div", { class: "charts" }, byAction, byDirection, talkersChart, conversationsChart,
        rejectedSourcesChart, rejectedPortsChart),
      matrixChart];
  }

  // Traffic between subnets and the outside. A flow between two monitored
  // ports has a record at each end: the sender's egress record counts it,
  // and ingress records count only traffic from outside the subnets.
  function subnetMatrix(pairs, subnets, metric, unit) {
    const nets = subnets.flatMap(s => [s.cidr, s.ipv6_cidr || s.cidr_v6]
      .map(c => ({ name: s.name || s.id, net: parseCidr(c) }))).filter(s => s.net);
    const where = addr => {
      const a = parseAddr(addr);
      const found = a && nets.find(s => inNet(a, s.net));
      return found ? found.name : "outside";
    };
    const cells = {};
    for (const r of pairs) {
      const from = where(r.srcaddr), to = where(r.dstaddr);
      if (r.direction === "ingress" && from !== "outside") continue;
      const key = `${from}\t${to}`;
      cells[key] = (cells[key] || 0) + (r.n || 0);
    }
    const names = [...new Set(nets.map(s => s.name)), "outside"];
    const m = Charts.matrix(`${title(metric)} between subnets and the outside`, names, cells, unit);
    m.id = "subnet-matrix";
    m.append(h("p", { class: "muted" }, "Counted once per flow: the sender's egress record, and ingress records from outside the subnets."));
    return m;
  }

  // Addresses as arrays of 16-bit groups (IPv4 as 2 groups), for CIDR tests.
  function parseAddr(text) {
    if (!text) return null;
    if (text.includes(".") && !text.includes(":")) {
      const o = text.split(".").map(Number);
      return o.length === 4 && o.every(n => n >= 0 && n < 256) ? { v: 4, g: [o[0] << 8 | o[1], o[2] << 8 | o[3]] } : null;
    }
    const [head, tail] = text.split("::");
    const part = s => (s ? s.split(":").map(x => parseInt(x, 16)) : []);
    const a = part(head), b = tail === undefined ? [] : part(tail);
    const g = tail === undefined ? a : [...a, ...Array(8 - a.length - b.length).fill(0), ...b];
    return g.length === 8 && g.every(n => n >= 0 && n < 65536) ? { v: 6, g } : null;
  }

  function parseCidr(text) {
    if (!text) return null;
    const [addr, len] = text.split("/");
    const a = parseAddr(addr);
    return a ? { ...a, len: Number(len) } : null;
  }

  function inNet(a, net) {
    if (a.v !== net.v) return false;
    let bits = net.len;
    for (let i = 0; i < a.g.length && bits > 0; i++, bits -= 16) {
      const mask = bits >= 16 ? 0xffff : (0xffff << (16 - bits)) & 0xffff;
      if ((a.g[i] & mask) !== (net.g[i] & mask)) return false;
    }
    return true;
  }

  // ---- security -------------------------------------------------------------

  const FINDINGS = {
    "port-scan": "A source probing many ports of one destination.",
    "host-sweep": "A source probing many addresses.",
    "brute-force": "Many connections to one service from one source.",
    "syn-flood": "Connections opened and never completed.",
    "udp-flood": "A UDP packet rate past its threshold.",
    "udp-reflection": "Large answers from a UDP service to many.",
    "denied-burst": "Rejected traffic far above its usual level.",
    "rule-hits": "How often each rule decided, per security group and network ACL.",
    "unused-rule": "Rules that decided nothing in the range: candidates for removal.",
    "shadowed-rule": "Rules that can never decide: an earlier rule always does.",
    "broad-rule": "Allow rules wider than the traffic they let in.",
    "denied-hits": "Traffic the rules rejected, by rule.",
    "suggested-change": "A rule removed or narrowed to what the range used.",
    "newly-rejected": "An accepted flow of the range the suggestion would reject.",
  };
  const ATTACKS = ["port-scan", "host-sweep", "brute-force", "syn-flood", "udp-flood", "udp-reflection", "denied-burst"];

  async function securityView(params) {
    const bar = await scopeBar("security", params, { noSearch: true });
    const q = timeParams(params);
    const path = topicPath(params.get("group"), params.get("topic"));
    const attacks = (await call(`${path}/analysis/attacks?${q}`)).findings;
    const rules = (await call(`${path}/analysis/rules?${q}`)).findings;
    const hits = (await call(`${path}/analysis/rules?${q}&hits=true`)).findings;
    const attackList = h("section", { id: "attacks" }, h("h2", {}, "Attacks"),
      attacks.length ? findingTables(attacks, params) : h("p", { class: "muted", id: "no-attacks" }, "No attacks found in this range."));
    const other = rules;
    const [groups, acls] = await Promise.all([
      call(`${base()}/security-groups`), call(`${base()}/network-acls`)]);
    const policies = new Map([
      ...groups.security_groups.map(g => [g.id, `Security group ${g.name || g.id}`]),
      ...acls.network_acls.map(a => [a.id, `Network ACL ${a.name || a.id}`]),
      ["-", "Built-in decisions (return traffic, defaults)"]]);
    const ruleList = h("section", { id: "rules" }, h("h2", {}, "Rules"),
      other.length ? findingTables(other, params) : h("p", { class: "muted" }, "No rule findings in this range."));
    const suggested = await call(`${path}/analysis/suggest?${q}`);
    const advice = suggestionSection(suggested, params);
    const counters = h("section", { id: "rule-hits" }, h("h2", {}, "Rule hit counters"),
      hits.length ? hitCounters(hits, policies, params) : h("p", { class: "muted" }, "No rule decided traffic in this range."));
    return [bar, h("p", { class: "summary", id: "security-summary", "data-attacks": attacks.length },
      `${attacks.length} attack findings, ${other.length} rule findings.`), attackList, ruleList, advice, counters];
  }

  // The least-privilege model the range's traffic suggests: its changes,
  // the replay of the range's accepted flows through it, and the model.
  function suggestionSection(report, params) {
    const s = report.suggestion;
    const changes = report.findings.filter(f => f.kind === "suggested-change");
    const rejected = report.findings.filter(f => f.kind === "newly-rejected");
    const verdict = s.newly_rejected === 0
      ? `Replayed ${s.checked} accepted flows of the range through it: all still accepted.`
      : `Replayed ${s.checked} accepted flows of the range through it: ${s.newly_rejected} would be rejected (below). Do not apply it as it is.`;
    return h("section", { id: "suggestion", "data-changes": changes.length, "data-checked": s.checked, "data-newly-rejected": s.newly_rejected },
      h("h2", {}, "Suggested least-privilege rules"),
      h("p", { class: s.newly_rejected === 0 ? "verdict ok" : "verdict bad", id: "replay" }, verdict),
      changes.length ? findingTables(changes, params) : h("p", { class: "muted" }, "Nothing to tighten: every rule is used as narrowly as it is written."),
      rejected.length ? findingTables(rejected, params) : null,
      changes.length ? h("details", {}, h("summary", {}, "The suggested model, as an inventory file"),
        h("pre", { id: "suggested-inventory" }, s.inventory)) : null);
  }

  // One table per kind of finding, with the columns that kind has, and a
  // link to the records behind each row.
  function findingTables(findings, params) {
    const kinds = [...new Set(findings.map(f => f.kind))]
      .sort((a, b) => (ATTACKS.indexOf(a) + 99) % 99 - (ATTACKS.indexOf(b) + 99) % 99 || a.localeCompare(b));
    return kinds.map(kind => {
      const rows = findings.filter(f => f.kind === kind);
      const cols = [...new Set(rows.flatMap(Object.keys))].filter(k => !["kind", "start", "end", "flow-log-id"].includes(k));
      return h("div", { class: "finding", "data-kind": kind },
        h("h3", {}, kind), h("p", { class: "muted" }, FINDINGS[kind] || ""),
        h("div", { class: "scroll" }, h("table", { class: "findings" },
          h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", { scope: "col" }, "window"), cols.map(c => h("th", { scope: "col" }, c)))),
          h("tbody", {}, rows.map(f => h("tr", {},
            h("td", {}, h("a", { href: findingLink(f, params) }, "Records")),
            h("td", {}, `${when(f.start)} to ${when(f.end)}`),
            cols.map(c => h("td", { class: typeof f[c] === "number" ? "num" : null }, f[c] ?? ""))))))));
    });
  }

  // The records behind a finding: its window, and its port, addresses,
  // service and rule as a search.
  function findingLink(f, params) {
    const terms = [];
    if (f["interface-id"]) terms.push(`interface-id:${f["interface-id"]}`);
    if (f.srcaddr) terms.push(`srcaddr:${f.srcaddr}`);
    if (f.dstaddr) terms.push(`dstaddr:${f.dstaddr}`);
    if (f.dstport != null && f.kind !== "port-scan") terms.push(`dstport:${f.dstport}`);
    // An attack's rule is the one that decided most of it: its records
    // are the source's, whatever decided them. "-" is a built-in rule's
    // owner, stored as nothing.
    if (!ATTACKS.includes(f.kind)) {
      if (f["policy-id"] && f["policy-id"] !== "-") terms.push(`policy-id:${f["policy-id"]}`);
      if (f["rule-id"]) terms.push(`rule-id:${f["rule-id"]}`);
    }
    if (f.kind === "denied-burst" || f.kind === "denied-hits") terms.push("action:REJECT");
    const next = new URLSearchParams({ group: params.get("group"), topic: params.get("topic"), range: "custom" });
    if (f.start) next.set("since", when(f.start));
    if (f.end) next.set("until", when(f.end));
    if (terms.length) next.set("search", terms.join(" "));
    return link("records", next);
  }

  function hitCounters(hits, policies, params) {
    const byPolicy = new Map();
    for (const f of hits) {
      const key = f["policy-id"] || "-";
      if (!byPolicy.has(key)) byPolicy.set(key, new Map());
      const rules = byPolicy.get(key);
      const rule = f["rule-id"] || "-";
      const n = rules.get(rule) || { connections: 0, packets: 0, bytes: 0, f };
      n.connections += f.connections || 0;
      n.packets += f.packets || 0;
      n.bytes += f.bytes || 0;
      rules.set(rule, n);
    }
    return [...byPolicy].map(([policy, rules]) => {
      const chart = Charts.barList(`${policies.get(policy) || policy}: flows decided per rule`,
        [...rules].sort((a, b) => b[1].connections - a[1].connections).map(([rule, n]) => ({
          label: rule, value: n.connections, href: findingLink({ ...n.f, start: 0, end: 0 }, params),
        })));
      chart.dataset.policy = policy;
      return chart;
    });
  }

  // ---- start ------------------------------------------------------------------

  window.addEventListener("hashchange", render);
  fetch("/console/fields.json")
    .then(r => r.json())
    .then(f => { fields = f; })
    .catch(() => { fields = []; })
    .finally(render);
})();
