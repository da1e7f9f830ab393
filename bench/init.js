'use strict';
// The seed's stack, for scripts/bench: a Node.js Lambda function that loads aws-sdk v2 and
// builds its clients at init (as the seed's handlers did), then a Lambda-runtime-like loop on
// AWS_LAMBDA_RUNTIME_API. rm-bench times process start to the first
// GET /2018-06-01/runtime/invocation/next and reads the RSS then, exactly as for the Rust
// functions. This is a lower bound for Node: the real Node runtime loads its own bootstrap
// code before the handler module.
const http = require('http');
const AWS = require('aws-sdk');

const documents = new AWS.DynamoDB.DocumentClient();
const stepFunctions = new AWS.StepFunctions();

async function handler(event) {
  return { ok: true, clients: [typeof documents.get, typeof stepFunctions.sendTaskSuccess] };
}

const api = process.env.AWS_LAMBDA_RUNTIME_API;
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function request(method, path, body) {
  return new Promise((resolve, reject) => {
    const [host, port] = api.split(':');
    const req = http.request(
      { host, port, method, path: `/2018-06-01/runtime${path}`, agent,
        headers: body ? { 'content-type': 'application/json' } : {} },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c) => { data += c; });
        res.on('end', () => resolve({ headers: res.headers, body: data }));
      });
    req.on('error', reject);
    req.end(body);
  });
}

(async () => {
  for (;;) {
    const next = await request('GET', '/invocation/next');
    const id = next.headers['lambda-runtime-aws-request-id'];
    const result = await handler(JSON.parse(next.body || '{}'));
    await request('POST', `/invocation/${id}/response`, JSON.stringify(result));
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
