// A single-threaded Node.js Twilio <-> OpenAI Realtime relay: the "typical Node bridge"
// baseline of docs/performance.md. Protocol-identical to `sim floor` (the Rust calibration
// floor): it answers POST /twilio/voice with <Connect><Stream> to itself (no signature
// checks), opens the Realtime session when the stream starts (bearer key, minimal GA
// session.update, response.create after session.updated), relays each caller `media`
// payload as input_audio_buffer.append and each response.output_audio.delta as a Twilio
// `media` plus a `mark`. No logic beyond that, so it measures Node + `ws` relaying.
//
// Usage: node bridge.js [--port 18095] [--realtime-url ws://127.0.0.1:18081/v1/realtime]
//                       [--model gpt-realtime] [--api-key sk-node]
'use strict';

const http = require('node:http');
const { WebSocket, WebSocketServer } = require('ws');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const port = Number(arg('port', '18095'));
const realtimeUrl = arg('realtime-url', 'ws://127.0.0.1:18081/v1/realtime');
const model = arg('model', 'gpt-realtime');
const apiKey = arg('api-key', process.env.OPENAI_API_KEY || 'sk-node');
const sep = realtimeUrl.includes('?') ? '&' : '?';
const upstreamUrl = `${realtimeUrl}${sep}model=${encodeURIComponent(model)}`;

const SESSION_UPDATE = JSON.stringify({
  type: 'session.update',
  session: {
    type: 'realtime',
    output_modalities: ['audio'],
    audio: { input: { format: { type: 'audio/pcmu' } }, output: { format: { type: 'audio/pcmu' } } },
  },
});
const RESPONSE_CREATE = JSON.stringify({ type: 'response.create' });

function xmlEscape(s) {
  return String(s)
    .replace(/&/g, '&amp;')
    .replace(/"/g, '&quot;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/'/g, '&apos;');
}

function voice(req, res) {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => {
    body += chunk;
  });
  req.on('end', () => {
    const p = new URLSearchParams(body);
    const sid = (p.get('CallSid') || '').replace(/[^A-Za-z0-9]/g, '');
    const twiml =
      '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>' +
      `<Stream url="ws://127.0.0.1:${port}/twilio/stream/node/${sid}">` +
      '<Parameter name="tenant" value="node"/>' +
      `<Parameter name="from" value="${xmlEscape(p.get('From') || '')}"/>` +
      `<Parameter name="to" value="${xmlEscape(p.get('To') || '')}"/>` +
      '<Parameter name="token" value="node"/></Stream></Connect></Response>';
    res.writeHead(200, { 'Content-Type': 'text/xml' });
    res.end(twiml);
  });
}

function relay(twilio) {
  let streamSid = null;
  let upstream = null;
  let greeted = false;
  let marks = 0;
  const closeBoth = () => {
    if (upstream && upstream.readyState === WebSocket.OPEN) upstream.close();
    if (twilio.readyState === WebSocket.OPEN) twilio.close();
  };

  twilio.on('message', (data) => {
    let m;
    try {
      m = JSON.parse(data);
    } catch {
      return;
    }
    if (m.event === 'start' && !upstream) {
      streamSid = m.streamSid;
      upstream = new WebSocket(upstreamUrl, { headers: { Authorization: `Bearer ${apiKey}` } });
      upstream.on('open', () => upstream.send(SESSION_UPDATE));
      upstream.on('message', (raw) => {
        let ev;
        try {
          ev = JSON.parse(raw);
        } catch {
          return;
        }
        if (ev.type === 'response.output_audio.delta' && typeof ev.delta === 'string') {
          marks += 1;
          twilio.send(JSON.stringify({ event: 'media', streamSid, media: { payload: ev.delta } }));
          twilio.send(JSON.stringify({ event: 'mark', streamSid, mark: { name: `m${marks}` } }));
        } else if (ev.type === 'session.updated' && !greeted) {
          greeted = true;
          upstream.send(RESPONSE_CREATE);
        }
      });
      upstream.on('close', closeBoth);
      upstream.on('error', closeBoth);
    } else if (m.event === 'media' && m.media && upstream && upstream.readyState === WebSocket.OPEN) {
      upstream.send(JSON.stringify({ type: 'input_audio_buffer.append', audio: m.media.payload }));
    } else if (m.event === 'stop') {
      closeBoth();
    }
  });
  twilio.on('close', closeBoth);
  twilio.on('error', closeBoth);
}

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/twilio/voice') {
    voice(req, res);
  } else {
    res.writeHead(404);
    res.end();
  }
});
const wss = new WebSocketServer({ noServer: true });
server.on('upgrade', (req, socket, head) => {
  if (!req.url.startsWith('/twilio/stream/')) {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, relay);
});
server.listen(port, '127.0.0.1', () => {
  console.log(`node bridge listening at http://127.0.0.1:${port}`);
});
