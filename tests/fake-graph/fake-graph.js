#!/usr/bin/env node
// Fake Microsoft Graph + Entra ID for scanwatch's notification tests.
//
// One HTTP server on 127.0.0.1 (port 0 unless --port) serving:
//   POST /{tenant}/oauth2/v2.0/token          client credentials: client_secret, a PS256/RS256
//                                             certificate assertion verified against --cert, or a
//                                             federated (workload identity) assertion
//   GET  /metadata/identity/oauth2/token      IMDS (requires "Metadata: true")
//   GET  /msi/token                           App Service / Container Apps (X-IDENTITY-HEADER)
//   POST /v1.0/users/{sender}/sendMail        validated as strictly as Graph: required fields,
//                                             recipient shape, <= 500 recipients, <= 5 x- headers,
//                                             > 4 MB -> 413; errors in Graph's JSON error format
//   /_control/...                             test control: scripted faults, config, records
// Only Node built-in modules, so it runs without npm.
//
// Prints "PORT <n>" on stdout once listening. Exits when stdin closes, so a test that dies does
// not leave it running.
'use strict';

const http = require('http');
const crypto = require('crypto');
const fs = require('fs');

const MAX_REQUEST = 4 * 1024 * 1024; // Graph's sendMail request limit
const MAX_RECIPIENTS = 500;
const MAX_X_HEADERS = 5;

function parseArgs(argv) {
  const o = {
    port: 0, tenant: 'test-tenant', clientId: 'test-client', clientSecret: null, cert: null,
    sender: 'alerts@example.com', tokenLifetime: 3600, federatedTokens: [], identityHeader: null,
  };
  for (let i = 2; i < argv.length; i += 2) {
    const k = argv[i], v = argv[i + 1];
    if (k === '--port') o.port = Number(v);
    else if (k === '--tenant') o.tenant = v;
    else if (k === '--client-id') o.clientId = v;
    else if (k === '--client-secret') o.clientSecret = v;
    else if (k === '--cert') o.cert = v;
    else if (k === '--sender') o.sender = v;
    else if (k === '--token-lifetime') o.tokenLifetime = Number(v);
    else if (k === '--federated-token') o.federatedTokens.push(v);
    else if (k === '--identity-header') o.identityHeader = v;
    else { console.error(`fake-graph: unknown argument ${k}`); process.exit(2); }
  }
  return o;
}

const cfg = parseArgs(process.argv);
let certInfo = null;
if (cfg.cert) {
  const pem = fs.readFileSync(cfg.cert, 'utf8');
  const x = new crypto.X509Certificate(pem);
  certInfo = {
    publicKey: x.publicKey,
    x5tS256: crypto.createHash('sha256').update(x.raw).digest('base64url'),
    x5t: crypto.createHash('sha1').update(x.raw).digest('base64url'),
  };
}

// State visible through /_control.
const state = {
  tokens: new Map(),      // access token -> {expires (ms), scope, perm}
  tokenRequests: [],      // {time, kind, ok, error, assertion?}
  sendRequests: [],       // every sendMail request: {time, end, status, subject, retryAfter}
  mails: [],              // accepted mails: {time, sender, request}
  faults: [],             // queue for sendMail: {status, code, retry_after, delay_ms}
  tokenFaults: [],        // queue for the token endpoint: {status, error}
  inFlight: 0,
  maxInFlight: 0,
  denyMail: false,        // tokens lack Mail.Send -> 403
  outage: null,           // {status, retry_after, token}: every sendMail (and token request if
                          // token) fails with status until cleared -- Graph down for a while
  roles: ['Mail.Send'],   // roles claim of issued tokens
};

function graphError(res, status, code, message, extraHeaders) {
  const now = new Date().toISOString();
  const body = JSON.stringify({
    error: {
      code, message,
      innerError: { date: now, 'request-id': crypto.randomUUID(), 'client-request-id': res.clientRequestId || '' },
    },
  });
  res.writeHead(status, Object.assign({ 'Content-Type': 'application/json', 'request-id': crypto.randomUUID() }, extraHeaders || {}));
  res.end(body);
}

function oauthError(res, status, error, description) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({
    error, error_description: description, error_codes: [70000], timestamp: new Date().toISOString(),
    trace_id: crypto.randomUUID(), correlation_id: crypto.randomUUID(),
  }));
}

// Tokens look like Entra's (a JWT with aud and roles) so clients can read their claims; the
// signature part is random: only this server validates them, by lookup.
function issueToken(scope) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const aud = scope.replace(/\/\.default$/, '');
  const tok = enc({ alg: 'RS256', typ: 'JWT' }) + '.' +
    enc({ aud, iss: `https://sts.fake/${cfg.tenant}/`, iat: now, exp: now + cfg.tokenLifetime, roles: state.roles, appid: cfg.clientId }) +
    '.' + crypto.randomBytes(24).toString('base64url');
  state.tokens.set(tok, { expires: Date.now() + cfg.tokenLifetime * 1000, scope });
  return tok;
}

function b64urlJson(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

// Verifies a certificate client assertion; returns null when valid, else the reason.
function verifyCertAssertion(jwt, aud) {
  if (!certInfo) return 'no certificate configured';
  const parts = jwt.split('.');
  if (parts.length !== 3) return 'assertion is not a JWT';
  let h, c;
  try { h = b64urlJson(parts[0]); c = b64urlJson(parts[1]); } catch (e) { return 'assertion is not valid JSON'; }
  if (h.typ !== 'JWT') return 'typ must be JWT';
  const data = Buffer.from(parts[0] + '.' + parts[1]);
  const sig = Buffer.from(parts[2], 'base64url');
  let ok;
  if (h.alg === 'PS256') {
    if (h['x5t#S256'] !== certInfo.x5tS256) return 'AADSTS700027: Client assertion failed signature validation: x5t#S256 does not match a registered certificate';
    ok = crypto.verify('sha256', data, { key: certInfo.publicKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig);
  } else if (h.alg === 'RS256') {
    if (h.x5t !== certInfo.x5t) return 'AADSTS700027: Client assertion failed signature validation: x5t does not match a registered certificate';
    ok = crypto.verify('sha256', data, certInfo.publicKey, sig);
  } else {
    return `unsupported alg ${h.alg}`;
  }
  if (!ok) return 'AADSTS700027: signature verification failed';
  const now = Math.floor(Date.now() / 1000);
  if (c.aud !== aud) return `aud must be ${aud}, got ${c.aud}`;
  if (c.iss !== cfg.clientId || c.sub !== cfg.clientId) return 'iss and sub must be the client id';
  if (typeof c.jti !== 'string' || c.jti.length < 8) return 'jti missing';
  if (typeof c.exp !== 'number' || c.exp < now) return 'assertion expired';
  if (typeof c.nbf !== 'number' || c.nbf > now + 60) return 'assertion not yet valid';
  if (c.exp - c.nbf > 3600) return 'assertion lifetime too long';
  return null;
}

function handleToken(req, res, body, tenant, port) {
  const entry = { time: Date.now(), kind: 'client_credentials', ok: false };
  state.tokenRequests.push(entry);
  if (state.outage && state.outage.token) {
    entry.error = 'outage';
    return oauthError(res, state.outage.status || 503, 'temporarily_unavailable', 'outage (scripted)');
  }
  if (state.tokenFaults.length > 0) {
    const f = state.tokenFaults.shift();
    entry.error = f.error || 'fault';
    return oauthError(res, f.status || 500, f.error || 'temporarily_unavailable', 'scripted fault');
  }
  if ((req.headers['content-type'] || '').split(';')[0] !== 'application/x-www-form-urlencoded') {
    entry.error = 'content-type';
    return oauthError(res, 400, 'invalid_request', 'AADSTS900144: Content-Type must be application/x-www-form-urlencoded');
  }
  const p = new URLSearchParams(body);
  if (tenant !== cfg.tenant) { entry.error = 'tenant'; return oauthError(res, 400, 'invalid_tenant', `AADSTS90002: Tenant '${tenant}' not found.`); }
  if (p.get('grant_type') !== 'client_credentials') { entry.error = 'grant'; return oauthError(res, 400, 'unsupported_grant_type', 'AADSTS70003'); }
  if (p.get('client_id') !== cfg.clientId) { entry.error = 'client_id'; return oauthError(res, 400, 'unauthorized_client', 'AADSTS700016: Application not found in the directory.'); }
  const scope = p.get('scope') || '';
  if (!/^https?:\/\/[^ ]+\/\.default$/.test(scope)) { entry.error = 'scope'; return oauthError(res, 400, 'invalid_scope', 'AADSTS70011: The provided value for scope is not valid.'); }
  const aud = `http://127.0.0.1:${port}/${tenant}/oauth2/v2.0/token`;
  if (p.has('client_secret')) {
    entry.kind = 'secret';
    if (cfg.clientSecret === null || p.get('client_secret') !== cfg.clientSecret) {
      entry.error = 'secret';
      return oauthError(res, 401, 'invalid_client', 'AADSTS7000215: Invalid client secret provided.');
    }
  } else if (p.get('client_assertion_type') === 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
    const a = p.get('client_assertion') || '';
    entry.assertion = a;
    if (state.federatedTokens === undefined) state.federatedTokens = cfg.federatedTokens.slice();
    if (state.federatedTokens.includes(a)) {
      entry.kind = 'federated';
    } else {
      entry.kind = 'certificate';
      const why = verifyCertAssertion(a, aud);
      if (why) { entry.error = why; return oauthError(res, 401, 'invalid_client', why); }
    }
  } else {
    entry.error = 'no credential';
    return oauthError(res, 401, 'invalid_client', 'AADSTS7000218: The request body must contain client_assertion or client_secret.');
  }
  entry.ok = true;
  entry.scope = scope;
  const tok = issueToken(scope);
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ token_type: 'Bearer', expires_in: cfg.tokenLifetime, ext_expires_in: cfg.tokenLifetime, access_token: tok }));
}

function handleImds(req, res, url) {
  const entry = { time: Date.now(), kind: 'imds', ok: false };
  state.tokenRequests.push(entry);
  if (req.headers['metadata'] !== 'true') {
    entry.error = 'metadata header';
    res.writeHead(400, { 'Content-Type': 'application/json' });
    return res.end(JSON.stringify({ error: 'invalid_request', error_description: 'Required metadata header not specified' }));
  }
  const resource = url.searchParams.get('resource');
  if (!url.searchParams.get('api-version') || !resource) {
    entry.error = 'params';
    res.writeHead(400, { 'Content-Type': 'application/json' });
    return res.end(JSON.stringify({ error: 'invalid_request', error_description: 'resource and api-version are required' }));
  }
  entry.ok = true;
  entry.resource = resource;
  entry.clientId = url.searchParams.get('client_id');
  const tok = issueToken(resource);
  const now = Math.floor(Date.now() / 1000);
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({
    access_token: tok, client_id: entry.clientId || 'system', expires_in: String(cfg.tokenLifetime),
    expires_on: String(now + cfg.tokenLifetime), ext_expires_in: String(cfg.tokenLifetime),
    not_before: String(now), resource, token_type: 'Bearer',
  }));
}

function handleAppService(req, res, url) {
  const entry = { time: Date.now(), kind: 'appservice', ok: false };
  state.tokenRequests.push(entry);
  if (!cfg.identityHeader || req.headers['x-identity-header'] !== cfg.identityHeader) {
    entry.error = 'identity header';
    res.writeHead(401, { 'Content-Type': 'application/json' });
    return res.end(JSON.stringify({ statusCode: 401, message: 'Unauthorized: X-IDENTITY-HEADER missing or wrong' }));
  }
  const resource = url.searchParams.get('resource');
  if (url.searchParams.get('api-version') !== '2019-08-01' || !resource) {
    entry.error = 'params';
    res.writeHead(400, { 'Content-Type': 'application/json' });
    return res.end(JSON.stringify({ statusCode: 400, message: 'resource and api-version=2019-08-01 required' }));
  }
  entry.ok = true;
  entry.resource = resource;
  const tok = issueToken(resource);
  const now = Math.floor(Date.now() / 1000);
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ access_token: tok, expires_on: String(now + cfg.tokenLifetime), resource, token_type: 'Bearer', client_id: 'appservice' }));
}

const EMAIL_RE = /^[^@\s<>(),;:"\[\]]+@[^@\s<>(),;:"\[\]]+\.[^@\s<>(),;:"\[\]]+$/;
const MESSAGE_FIELDS = new Set(['subject', 'body', 'toRecipients', 'ccRecipients', 'bccRecipients', 'replyTo',
  'importance', 'internetMessageHeaders', 'attachments', 'from', 'sender']);

// Returns null when the sendMail body is acceptable, else [status, code, message].
function validateSendMail(doc) {
  const bad = (m) => [400, 'ErrorInvalidRequest', m];
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return [400, 'BadRequest', 'Empty Payload. JSON content expected.'];
  for (const k of Object.keys(doc)) {
    if (k !== 'message' && k !== 'saveToSentItems') return [400, 'RequestBodyRead', `The parameter '${k}' in the request payload is not a valid parameter for the operation 'sendMail'.`];
  }
  if ('saveToSentItems' in doc && typeof doc.saveToSentItems !== 'boolean') return [400, 'RequestBodyRead', 'saveToSentItems must be a boolean'];
  const m = doc.message;
  if (m === null || typeof m !== 'object' || Array.isArray(m)) return [400, 'ErrorInvalidParameter', "The value of the parameter 'Message' is empty."];
  for (const k of Object.keys(m)) {
    if (!MESSAGE_FIELDS.has(k)) return [400, 'RequestBodyRead', `The property '${k}' does not exist on type 'microsoft.graph.message'.`];
  }
  if (typeof m.subject !== 'string') return bad('message.subject must be a string');
  if (m.subject.length > 255) return bad('message.subject is longer than 255 characters');
  if (m.body === null || typeof m.body !== 'object') return bad('message.body is required');
  if (m.body.contentType !== 'HTML' && m.body.contentType !== 'Text' && m.body.contentType !== 'html' && m.body.contentType !== 'text') {
    return [400, 'RequestBodyRead', `Cannot convert the literal '${m.body.contentType}' to the expected type 'microsoft.graph.bodyType'.`];
  }
  if (typeof m.body.content !== 'string') return bad('message.body.content must be a string');
  let n = 0;
  for (const f of ['toRecipients', 'ccRecipients', 'bccRecipients', 'replyTo']) {
    if (!(f in m)) continue;
    if (!Array.isArray(m[f])) return [400, 'RequestBodyRead', `${f} must be an array`];
    for (const r of m[f]) {
      if (r === null || typeof r !== 'object' || r.emailAddress === null || typeof r.emailAddress !== 'object') {
        return [400, 'RequestBodyRead', `${f}: each recipient must be {"emailAddress":{"address":...}}`];
      }
      for (const k of Object.keys(r.emailAddress)) {
        if (k !== 'address' && k !== 'name') return [400, 'RequestBodyRead', `The property '${k}' does not exist on type 'microsoft.graph.emailAddress'.`];
      }
      if (typeof r.emailAddress.address !== 'string' || !EMAIL_RE.test(r.emailAddress.address)) {
        return [400, 'ErrorInvalidRecipients', "At least one recipient isn't valid."];
      }
      if (f !== 'replyTo') n++;
    }
  }
  if (n === 0) return [400, 'ErrorInvalidRecipients', "At least one recipient isn't valid., A message can't be sent because it contains no recipients."];
  if (n > MAX_RECIPIENTS) return [400, 'ErrorTooManyRecipients', `The message has ${n} recipients; at most ${MAX_RECIPIENTS} are allowed.`];
  if ('internetMessageHeaders' in m) {
    const h = m.internetMessageHeaders;
    if (!Array.isArray(h)) return [400, 'RequestBodyRead', 'internetMessageHeaders must be an array'];
    if (h.length > MAX_X_HEADERS) return [400, 'InvalidInternetMessageHeaderCollection', 'Maximum number of headers in one message should be less than or equal to 5.'];
    for (const x of h) {
      if (x === null || typeof x !== 'object' || typeof x.name !== 'string' || typeof x.value !== 'string') {
        return [400, 'InvalidInternetMessageHeader', 'Each internet message header needs a string name and value.'];
      }
      if (!/^[xX]-[A-Za-z0-9-]+$/.test(x.name)) return [400, 'InvalidInternetMessageHeader', `The internet message header name '${x.name}' should start with 'x-' or 'X-'.`];
      if (/[\r\n]/.test(x.value)) return [400, 'InvalidInternetMessageHeader', 'Header values must not contain line breaks.'];
    }
  }
  return null;
}

function bearerOk(req, res) {
  const auth = req.headers['authorization'] || '';
  const m = /^Bearer (.+)$/.exec(auth);
  if (!m) { graphError(res, 401, 'InvalidAuthenticationToken', 'Access token is empty.'); return false; }
  const t = state.tokens.get(m[1]);
  if (!t) { graphError(res, 401, 'InvalidAuthenticationToken', 'IDX14100: JWT is not well formed.'); return false; }
  if (t.expires < Date.now()) { graphError(res, 401, 'InvalidAuthenticationToken', 'Lifetime validation failed, the token is expired.'); return false; }
  if (state.denyMail) { graphError(res, 403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.'); return false; }
  return true;
}

function handleSendMail(req, res, body, sender, rec) {
  res.clientRequestId = req.headers['client-request-id'];
  if (state.outage) {
    const o = state.outage;
    rec.status = o.status || 503;
    rec.end = Date.now();
    rec.outage = true;
    const h = o.retry_after !== undefined ? { 'Retry-After': String(o.retry_after) } : {};
    return graphError(res, rec.status, rec.status === 429 ? 'ApplicationThrottled' : 'ErrorServerBusy', 'outage (scripted)', h);
  }
  if (!bearerOk(req, res)) { rec.status = res.statusCode; return; }
  if (body.length > MAX_REQUEST) {
    rec.status = 413;
    return graphError(res, 413, 'RequestEntityTooLarge', 'The maximum request length supported is 4MB.');
  }
  if (decodeURIComponent(sender).toLowerCase() !== cfg.sender.toLowerCase()) {
    rec.status = 404;
    return graphError(res, 404, 'ErrorInvalidUser', `The requested user '${decodeURIComponent(sender)}' is invalid.`);
  }
  if ((req.headers['content-type'] || '').split(';')[0].trim() !== 'application/json') {
    rec.status = 415;
    return graphError(res, 415, 'UnsupportedMediaType', 'Content-Type must be application/json');
  }
  let doc;
  try { doc = JSON.parse(body.toString('utf8')); } catch (e) {
    rec.status = 400;
    return graphError(res, 400, 'BadRequest', 'Unable to read JSON request payload.');
  }
  const v = validateSendMail(doc);
  if (v) { rec.status = v[0]; rec.code = v[1]; return graphError(res, v[0], v[1], v[2]); }
  rec.subject = doc.message.subject;
  const f = state.faults.length > 0 ? state.faults.shift() : null;
  // record_first: accepted at once, answered late -- a crash before the answer leaves an
  // accepted mail the client does not know about (the one duplicate the design allows).
  const recordedEarly = !!(f && f.record_first);
  if (recordedEarly) state.mails.push({ time: Date.now(), sender, request: doc, clientRequestId: req.headers['client-request-id'] || null });
  const finish = () => {
    rec.end = Date.now();
    if (f && f.status && f.status !== 202) {
      rec.status = f.status;
      rec.retryAfter = f.retry_after;
      const h = f.retry_after !== undefined ? { 'Retry-After': String(f.retry_after) } : {};
      const code = f.code || ({ 429: 'ApplicationThrottled', 503: 'ErrorServerBusy', 504: 'GatewayTimeout' }[f.status] || 'generalException');
      return graphError(res, f.status, code, f.message || 'scripted fault', h);
    }
    if (req.socket.destroyed) { rec.status = 'client-gone'; return; }
    if (!recordedEarly) state.mails.push({ time: Date.now(), sender, request: doc, clientRequestId: req.headers['client-request-id'] || null });
    rec.status = 202;
    const h = { 'request-id': crypto.randomUUID() };
    if (f && f.retry_after !== undefined) { h['Retry-After'] = String(f.retry_after); rec.retryAfter = f.retry_after; }
    res.writeHead(202, h);
    res.end();
  };
  if (f && f.delay_ms) setTimeout(finish, f.delay_ms);
  else finish();
}

function readBody(req, limit, cb) {
  const chunks = [];
  let n = 0;
  req.on('data', (c) => { n += c.length; if (n <= limit) chunks.push(c); });
  req.on('end', () => cb(n > limit ? Buffer.alloc(limit + 1) : Buffer.concat(chunks)));
}

function json(res, status, obj) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(obj));
}

function handleControl(req, res, url, body) {
  const p = url.pathname;
  let doc = null;
  if (body.length > 0) { try { doc = JSON.parse(body.toString('utf8')); } catch (e) { return json(res, 400, { error: 'bad json' }); } }
  if (p === '/_control/faults' && req.method === 'POST') { state.faults.push(...doc); return json(res, 200, { queued: state.faults.length }); }
  if (p === '/_control/token-faults' && req.method === 'POST') { state.tokenFaults.push(...doc); return json(res, 200, { queued: state.tokenFaults.length }); }
  if (p === '/_control/config' && req.method === 'POST') {
    if ('federated_tokens' in doc) state.federatedTokens = doc.federated_tokens;
    if ('deny_mail' in doc) state.denyMail = doc.deny_mail;
    if ('outage' in doc) state.outage = doc.outage;
    if ('roles' in doc) state.roles = doc.roles;
    if ('token_lifetime' in doc) cfg.tokenLifetime = doc.token_lifetime;
    if ('sender' in doc) cfg.sender = doc.sender;
    return json(res, 200, { ok: true });
  }
  if (p === '/_control/expire-tokens' && req.method === 'POST') {
    for (const t of state.tokens.values()) t.expires = 0;
    return json(res, 200, { expired: state.tokens.size });
  }
  if (p === '/_control/mails') return json(res, 200, state.mails);
  if (p === '/_control/requests') return json(res, 200, state.sendRequests);
  if (p === '/_control/token-requests') return json(res, 200, state.tokenRequests);
  if (p === '/_control/stats') return json(res, 200, { mails: state.mails.length, requests: state.sendRequests.length, in_flight: state.inFlight, max_in_flight: state.maxInFlight, faults_left: state.faults.length, token_requests: state.tokenRequests.length });
  if (p === '/_control/reset' && req.method === 'POST') {
    state.mails = []; state.sendRequests = []; state.tokenRequests = []; state.faults = []; state.tokenFaults = []; state.maxInFlight = 0;
    return json(res, 200, { ok: true });
  }
  return json(res, 404, { error: 'unknown control path' });
}

const server = http.createServer((req, res) => {
  const port = server.address().port;
  const url = new URL(req.url, `http://127.0.0.1:${port}`);
  const send = /^\/v1\.0\/users\/([^/]+)\/sendMail$/.exec(url.pathname);
  const tok = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(url.pathname);
  let rec = null;
  if (send && req.method === 'POST') {
    rec = { time: Date.now(), end: null, status: null };
    state.sendRequests.push(rec);
    state.inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
    let done = false;
    const leave = () => { if (!done) { done = true; state.inFlight--; } };
    res.on('finish', leave);
    res.on('close', leave);
  }
  readBody(req, MAX_REQUEST + 1024, (body) => {
    if (url.pathname.startsWith('/_control/')) return handleControl(req, res, url, body);
    if (send && req.method === 'POST') return handleSendMail(req, res, body, send[1], rec);
    if (tok && req.method === 'POST') return handleToken(req, res, body.toString('utf8'), tok[1], port);
    if (url.pathname === '/metadata/identity/oauth2/token' && req.method === 'GET') return handleImds(req, res, url);
    if (url.pathname === '/msi/token' && req.method === 'GET') return handleAppService(req, res, url);
    graphError(res, 404, 'UnknownError', `No route for ${req.method} ${url.pathname}`);
  });
});

server.listen(cfg.port, '127.0.0.1', () => {
  process.stdout.write(`PORT ${server.address().port}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
