// hanrag's page: plain JavaScript over the JSON API (no build step). Every piece of document text is
// put into the page with textContent, never as HTML, so a document cannot inject markup.
"use strict";

const $ = (id) => document.getElementById(id);
const STATUS = { queued: "대기 중", running: "처리 중", processing: "처리 중", succeeded: "완료", skipped: "변경 없음",
  failed: "실패" };
const STAGES = { extract: "추출", chunk: "분할", embed: "임베딩", index: "색인", summarize: "요약", notify: "알림" };
const LIVE_STAGES = { extract: "추출 중", chunk: "청크 나누는 중", embed: "임베딩 중", index: "색인 중", summarize: "요약 중", notify: "알림 중" };
// The pipeline's reasons are written in English for logs; the page leads with Korean and keeps the original.
const REASONS = [
  [/^encrypted PDF: a password is required/, "암호가 걸린 PDF입니다: 비밀번호가 필요합니다 (HANRAG_PDF_PASSWORD로 설정)"],
  [/^encrypted PDF: the configured password is wrong/, "암호가 걸린 PDF입니다: 설정한 비밀번호가 맞지 않습니다"],
  [/^encrypted HWPX?: the document is protected by a password/, "암호가 걸린 한글 문서입니다"],
  [/^encrypted HWP: the document is under DRM/, "DRM으로 보호된 한글 문서입니다"],
  [/^encrypted Office document/, "암호가 걸린 오피스 문서입니다: 비밀번호가 필요합니다"],
  [/^HWP distribution document/, "배포용 한글 문서라 본문이 암호화되어 있습니다"],
  [/^empty (file|document|PDF)/, "빈 파일입니다: 색인할 글자가 없습니다"],
  [/^file too large/, "파일이 너무 큽니다"],
  [/^unsupported file type/, "지원하지 않는 파일 형식입니다"],
  [/^broken /, "파일이 손상되어 읽을 수 없습니다"],
  [/^unreadable text/, "글자 인코딩을 알 수 없습니다"],
  [/^no readable text/, "어느 쪽에서도 읽을 수 있는 글자를 찾지 못했습니다"],
  [/^the file is gone/, "파일이 읽히기 전에 옮겨지거나 지워졌습니다"],
  [/^the file cannot be read/, "파일을 읽을 권한이 없습니다"],
  [/^interrupted/, "처리 도중 서버가 멈췄습니다: 파일을 다시 올리세요"],
  [/^unchanged since the last ingest/, "지난번과 내용이 같아 건너뛰었습니다"],
  [/took longer than|time limit/, "처리 시간 한도를 넘었습니다"],
  [/^internal error/, "내부 오류가 났습니다"],
];

function inKorean(reason) {
  if (!reason || /[가-힣]/.test(reason)) return reason || "";
  const known = REASONS.find(([pattern]) => pattern.test(reason));
  return known ? `${known[1]}\n(${reason})` : reason;
}
let user = null;
let session = null;
let runsTimer = null;
let lastRunsState = "";

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  if (!response.ok) {
    let reason = `HTTP ${response.status}`;
    try { reason = (await response.json()).detail || reason; } catch (_) { /* not JSON */ }
    const error = new Error(typeof reason === "string" ? reason : JSON.stringify(reason));
    error.status = response.status;
    throw error;
  }
  return response.headers.get("content-type")?.includes("json") ? response.json() : response;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "onclick") node.addEventListener("click", value);
    else node[key] = value;
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

// ------------------------------------------------------------------ where the page talks to
// `hanrag serve`'s /api (this origin, a session cookie), or, when the site serves /config.json (only the
// AWS deployment writes one), the deployed HTTP and WebSocket APIs behind Cognito's hosted login. The rest
// of the page is the same for both.

const localBackend = {
  pollMs: 1500,
  async me() { return (await api("/api/me")).user; },
  async loginMode() { return (await api("/api/auth")).mode; },
  async logout() { await api("/api/logout", { method: "POST" }); },
  async upload(files) {
    const form = new FormData();
    for (const file of files) form.append("files", file, file.name);
    return (await api("/api/documents", { method: "POST", body: form })).runs.length;
  },
  async runs() { return (await api("/api/runs")).runs; },
  async documents() { return (await api("/api/documents")).documents; },
  async deleteDocument(doc) { await api(`/api/documents/${encodeURIComponent(doc.document_id)}`, { method: "DELETE" }); },
  async sessions() { return (await api("/api/sessions")).sessions; },
  async history(id) { return (await api(`/api/history?session=${encodeURIComponent(id)}`)).messages; },
  async clearHistory(id) { await api(`/api/history?session=${encodeURIComponent(id)}`, { method: "DELETE" }); },
  // Server-Sent Events: each `event: …` block as onEvent(type, data)
  async chat(session, message, onEvent) {
    const response = await api("/api/chat", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ session, message }),
    });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        onEvent(event, JSON.parse(/^data: (.*)$/m.exec(block)?.[1] || "{}"));
      }
    }
  },
};

const base64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
  .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const randomText = (size) => base64url(crypto.getRandomValues(new Uint8Array(size)));
const claimsOf = (jwt) => JSON.parse(new TextDecoder().decode(
  Uint8Array.from(atob(jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0))));

// The deployed stack: Cognito's hosted UI (authorization code + PKCE), the ID token kept in this tab's
// sessionStorage and sent as a bearer token; uploads through pre-signed PUT URLs; answers over the WebSocket.
function awsBackend(config) {
  const home = `${location.origin}/`;
  const saved = () => JSON.parse(sessionStorage.getItem("hanrag.tokens") || "null");
  const idToken = () => {
    const tokens = saved();
    if (tokens && tokens.expires_at > Date.now()) return tokens.id_token;
    const error = new Error("로그인이 필요합니다");
    error.status = 401;
    throw error;
  };
  const call = (path, options = {}) => api(`${config.http_api}${path}`, {
    ...options, credentials: "omit", headers: { ...(options.headers || {}), Authorization: `Bearer ${idToken()}` },
  });
  const json = (method, body) => ({ method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

  // back from the hosted UI with ?code=…&state=…: the code and this tab's verifier buy the tokens
  async function finishLogin() {
    const params = new URLSearchParams(location.search);
    if (!params.has("code") && !params.has("error")) return;
    history.replaceState(null, "", "/");
    const pending = JSON.parse(sessionStorage.getItem("hanrag.pkce") || "null");
    sessionStorage.removeItem("hanrag.pkce");
    if (params.has("error")) throw new Error(params.get("error_description") || params.get("error"));
    if (!pending || pending.state !== params.get("state")) throw new Error("로그인 요청이 이 창의 것이 아닙니다");
    const response = await fetch(`${config.login}/oauth2/token`, {
      method: "POST", credentials: "omit", headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "authorization_code", client_id: config.client_id,
        code: params.get("code"), redirect_uri: home, code_verifier: pending.verifier }),
    });
    if (!response.ok) throw new Error(`토큰을 받지 못했습니다 (HTTP ${response.status})`);
    const tokens = await response.json();
    sessionStorage.setItem("hanrag.tokens", JSON.stringify({
      id_token: tokens.id_token, expires_at: claimsOf(tokens.id_token).exp * 1000 - 60000 }));
  }

  return {
    pollMs: 5000,
    async me() {
      await finishLogin();
      const claims = claimsOf(idToken());
      return claims.email || claims["cognito:username"] || claims.sub;
    },
    async loginMode() { return "cognito"; },
    async login() {
      const verifier = randomText(48);
      const state = randomText(16);
      const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
      sessionStorage.setItem("hanrag.pkce", JSON.stringify({ verifier, state }));
      location.assign(`${config.login}/oauth2/authorize?${new URLSearchParams({
        response_type: "code", client_id: config.client_id, redirect_uri: home, scope: "openid email profile",
        state, code_challenge: challenge, code_challenge_method: "S256" })}`);
    },
    async logout() {
      sessionStorage.removeItem("hanrag.tokens");
      location.assign(`${config.login}/logout?${new URLSearchParams({ client_id: config.client_id, logout_uri: home })}`);
    },
    async upload(files) {
      for (const file of files) {
        const grant = await call("/uploads", json("POST", {
          name: file.name, size: file.size, content_type: file.type || undefined }));
        const put = await fetch(grant.url, { method: grant.method, headers: grant.headers, body: file, credentials: "omit" });
        if (!put.ok) throw new Error(`${file.name}: HTTP ${put.status}`);
      }
      return files.length;
    },
    // no run log on AWS: each document's item carries its last run's status (queued → processing → …)
    async runs() {
      return (await this.documents()).filter((doc) => doc.last_status).map((doc) => ({
        run_id: `${doc.source}#${doc.updated_at}`, source: doc.source, status: doc.last_status,
        durations: doc.stage_seconds || {}, warnings: [], reason: doc.last_reason }));
    },
    async documents() { return call("/documents"); },
    async deleteDocument(doc) { await call(`/uploads?name=${encodeURIComponent(doc.source)}`, { method: "DELETE" }); },
    async sessions() { return call("/sessions"); },
    async history(id) { return call(`/sessions/${encodeURIComponent(id)}`); },
    async clearHistory(id) { await call(`/sessions/${encodeURIComponent(id)}`, { method: "DELETE" }); },
    // one WebSocket per question: {"type": "token"} frames, then "final" or "error"
    chat(session, message, onEvent) {
      return new Promise((resolve, reject) => {
        const socket = new WebSocket(`${config.websocket}?token=${encodeURIComponent(idToken())}`);
        let ended = false;
        socket.onopen = () => socket.send(JSON.stringify({ action: "ask", question: message, session_id: session }));
        socket.onmessage = (received) => {
          const frame = JSON.parse(received.data);
          onEvent(frame.type, frame);
          if (frame.type === "final" || frame.type === "error") {
            ended = true;
            socket.close();
            resolve();
          }
        };
        socket.onclose = () => { if (!ended) reject(new Error("연결이 끊겼습니다")); };
      });
    },
  };
}

async function chooseBackend() {
  try {
    const response = await fetch("/config.json", { cache: "no-store" });
    if (response.ok) {
      const config = await response.json();
      if (config.mode === "aws") return awsBackend(config);
    }
  } catch (_) { /* no config: hanrag serve */ }
  return localBackend;
}

let backend = localBackend;

// ------------------------------------------------------------------ login

async function start() {
  backend = await chooseBackend();
  try {
    user = await backend.me();
    await enter();
  } catch (error) {
    await showLogin(error.status === 401 ? "" : error.message);
  }
}

// Logged out, only the login shows: the password form, or (with no accounts) how to use the printed link.
async function showLogin(problem = "") {
  user = null;
  clearInterval(runsTimer);
  $("app").hidden = true;
  $("whoami").hidden = true;
  $("login").hidden = false;
  let mode = "password";
  try { mode = await backend.loginMode(); } catch (_) { /* keep the form */ }
  $("login-form").hidden = mode !== "password";
  $("login-link").hidden = mode !== "link";
  $("login-cognito").hidden = mode !== "cognito";
  if (mode === "cognito") {
    $("login-cognito-error").textContent = problem ? `로그인하지 못했습니다: ${problem}` : "";
    return;
  }
  if (new URLSearchParams(location.search).get("login") === "expired") {
    const message = "로그인 링크가 맞지 않거나 이미 쓰였습니다.";
    $(mode === "link" ? "login-link-error" : "login-error").textContent = message;
    history.replaceState(null, "", "/");
  }
  if (mode === "password") $("login-user").focus();
}

async function enter() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("whoami").hidden = false;
  $("user-name").textContent = `${user} 님`;
  await Promise.all([refreshRuns(), refreshDocuments(), loadSessions()]);
  clearInterval(runsTimer);
  runsTimer = setInterval(refreshRuns, backend.pollMs);
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    user = (await api("/api/login", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user: $("login-user").value.trim(), password: $("login-password").value }),
    })).user;
    $("login-password").value = "";
    await enter();
  } catch (error) {
    $("login-error").textContent = `로그인하지 못했습니다: ${error.message}`;
  }
});

$("login-cognito-button").addEventListener("click", () => backend.login());

$("logout-button").addEventListener("click", async () => {
  await backend.logout();
  $("messages").replaceChildren();
  await showLogin();
});

// ------------------------------------------------------------------ upload

async function upload(files) {
  if (!files.length) return;
  $("upload-message").textContent = `${files.length}개 파일을 올리는 중…`;
  try {
    const queued = await backend.upload(files);
    $("upload-message").textContent = `${queued}개 파일을 처리 대기열에 넣었습니다.`;
    await refreshRuns();
  } catch (error) {
    $("upload-message").textContent = `올리지 못했습니다: ${error.message}`;
  }
}

$("file-input").addEventListener("change", (event) => {
  upload([...event.target.files]);
  event.target.value = "";
});
const zone = $("drop-zone");
for (const name of ["dragenter", "dragover"]) {
  zone.addEventListener(name, (event) => { event.preventDefault(); zone.classList.add("over"); });
}
for (const name of ["dragleave", "drop"]) {
  zone.addEventListener(name, () => zone.classList.remove("over"));
}
zone.addEventListener("drop", (event) => {
  event.preventDefault();
  upload([...event.dataTransfer.files]);
});

// ------------------------------------------------------------------ runs and documents

async function refreshRuns() {
  if (!user) return;
  let runs;
  try {
    runs = await backend.runs();
  } catch (error) {
    if (error.status === 401) showLogin();
    return;
  }
  const state = JSON.stringify(runs.map((r) => [r.run_id, r.status]));
  $("runs-empty").hidden = runs.length > 0;
  $("runs-body").replaceChildren(...runs.map((run) => {
    const timings = Object.entries(run.durations || {})
      .map(([stage, seconds]) => `${STAGES[stage] || stage} ${seconds.toFixed(2)}초`).join(" · ");
    const notes = [...(run.warnings || [])];
    if (run.reason && run.status !== "succeeded") notes.unshift(inKorean(run.reason));
    if (run.failed_stage) notes.push(`실패한 단계: ${STAGES[run.failed_stage] || run.failed_stage}`);
    return el("tr", { dataset: { status: run.status, source: run.source, runId: run.run_id } },
      el("td", { className: "file", textContent: run.source }),
      el("td", { className: `status ${run.status}`, textContent: STATUS[run.status] || run.status },
        run.status === "running" ? el("span", { className: "stage", textContent: liveStage(run) }) : null),
      el("td", { className: "timings", textContent: timings }),
      el("td", { className: "notes", textContent: notes.join("\n") }));
  }));
  if (state !== lastRunsState) {  // a run finished or started: the documents may have changed
    lastRunsState = state;
    refreshDocuments();
  }
}

function liveStage(run) {
  const label = LIVE_STAGES[run.stage] || "";
  return run.stage === "embed" && run.chunks_total ? `${label} ${run.chunks_done}/${run.chunks_total} 청크` : label;
}

async function refreshDocuments() {
  if (!user) return;
  const documents = await backend.documents();
  $("documents-empty").hidden = documents.length > 0;
  $("documents-list").replaceChildren(...documents.map((doc) => el("li", { className: "document", dataset: { id: doc.document_id } },
    el("div", { className: "name", textContent: doc.source }),
    el("div", { className: "facts",
      textContent: doc.version  // a file with no searchable version yet: its run's status (and why it failed)
        ? `${doc.pages}쪽 · 청크 ${doc.chunks}개 · 버전 ${doc.version.slice(0, 8)} · ${new Date(doc.updated_at * 1000).toLocaleString("ko-KR")}`
        : [STATUS[doc.last_status] || doc.last_status, doc.last_reason].filter(Boolean).join(" · ") }),
    el("p", { className: "summary", title: "눌러서 펼치기", textContent: doc.summary || "(요약 없음)",
      onclick: (event) => event.currentTarget.classList.toggle("open") }),
    el("div", { className: "actions" },
      el("button", { type: "button", textContent: "요약 보기", onclick: () => ask(`${doc.source} 요약해줘`) }),
      el("button", { type: "button", textContent: "삭제", onclick: () => removeDocument(doc) })))));
}

async function removeDocument(doc) {
  if (!confirm(`「${doc.source}」을(를) 삭제할까요? 검색 색인에서도 지워집니다.`)) return;
  await backend.deleteDocument(doc);
  await refreshDocuments();
}

// ------------------------------------------------------------------ chat

function newSessionId() {
  return `s-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

async function loadSessions() {
  const sessions = await backend.sessions();
  const saved = localStorage.getItem(`hanrag.session.${user}`);
  session = saved || sessions[0] || newSessionId();
  const ids = sessions.includes(session) ? sessions : [session, ...sessions];
  $("session-select").replaceChildren(...ids.map((id, i) =>
    el("option", { value: id, textContent: i === 0 && !sessions.includes(id) ? "새 대화" : `대화 ${ids.length - i}` })));
  $("session-select").value = session;
  await openSession(session);
}

async function openSession(id) {
  session = id;
  localStorage.setItem(`hanrag.session.${user}`, id);
  const messages = await backend.history(id);
  $("messages").replaceChildren();
  for (const message of messages) {
    if (message.role === "user") addUserMessage(message.text);
    else renderAnswer(addAssistantMessage(), message.text, message.citations);
  }
}

$("session-select").addEventListener("change", (event) => openSession(event.target.value));
$("new-session").addEventListener("click", async () => {
  localStorage.setItem(`hanrag.session.${user}`, newSessionId());
  await loadSessions();
});
$("clear-chat").addEventListener("click", async () => {
  await backend.clearHistory(session);
  $("messages").replaceChildren();
});
$("summarize-chat").addEventListener("click", () => ask("지금까지 대화 요약해줘"));

function addUserMessage(text) {
  const node = el("div", { className: "message user", textContent: text });
  $("messages").append(node);
  node.scrollIntoView({ block: "end" });
}

function addAssistantMessage() {
  const node = el("div", { className: "message assistant" }, el("span", { className: "text" }));
  $("messages").append(node);
  return node;
}

// The answer's [n] marks become links that open passage n below it; the fact it names is bold.
function renderAnswer(node, text, citations = [], fact = null) {
  const key = Math.random().toString(36).slice(2, 8);
  const body = node.querySelector(".text");
  body.replaceChildren();
  const marked = (segment) => {
    let last = 0;
    for (const match of segment.matchAll(/\[(\d+)\]/g)) {
      const n = Number(match[1]);
      body.append(segment.slice(last, match.index));
      if (n >= 1 && n <= citations.length) {
        body.append(el("a", { className: "mark", href: `#cite-${key}-${n}`, textContent: match[0],
          onclick: () => { document.getElementById(`cite-${key}-${n}`).open = true; } }));
      } else {
        body.append(match[0]);
      }
      last = match.index + match[0].length;
    }
    body.append(segment.slice(last));
  };
  if (fact && text.slice(fact.start, fact.end) === fact.text) {
    marked(text.slice(0, fact.start));
    body.append(el("strong", { className: "fact", textContent: fact.text }));
    marked(text.slice(fact.end));
  } else {
    marked(text);
  }
  node.querySelector(".citations")?.remove();
  if (citations.length) {
    node.append(el("div", { className: "citations" }, ...citations.map((c, i) =>
      el("details", { className: "citation", id: `cite-${key}-${i + 1}` },
        el("summary", { textContent: `[${i + 1}] ${c.source}, ${c.page}쪽` }),
        el("blockquote", { textContent: c.text || "" })))));
  }
  node.scrollIntoView({ block: "end" });
}

async function ask(message) {
  addUserMessage(message);
  const node = addAssistantMessage();
  node.classList.add("streaming");
  const body = node.querySelector(".text");
  $("chat-send").disabled = true;
  try {
    await backend.chat(session, message, (event, data) => {
      if (event === "token") {
        body.append(data.text);
        node.scrollIntoView({ block: "end" });
      } else if (event === "final") {
        renderAnswer(node, data.answer, data.citations, data.fact);
        for (const warning of data.warnings || []) node.append(el("div", { className: "hint", textContent: warning }));
      } else if (event === "error") {
        node.append(el("div", { className: "error", textContent: `답을 만들지 못했습니다: ${data.message || data.reason}` }));
      }
    });
    if (![...$("session-select").options].some((o) => o.value === session)) await loadSessions();
  } catch (error) {
    node.append(el("div", { className: "error", textContent: `답을 만들지 못했습니다: ${error.message}` }));
  } finally {
    node.classList.remove("streaming");
    $("chat-send").disabled = false;
  }
}

$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const message = $("chat-input").value.trim();
  if (!message) return;
  $("chat-input").value = "";
  ask(message);
});
$("chat-input").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("chat-form").requestSubmit();
  }
});

start();
