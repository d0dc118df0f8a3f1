// Reads multipart/form-data bodies with busboy (the parser behind multer and most Node servers)
// and prints what it saw in each, as JSON. Many bodies per call: a Node start costs ~0.4 s.
// stdin:  [{"body": BASE64, "boundary": "..."}, ...]
// stdout: {"busboy": VERSION, "bodies": [[{name, filename, value}|{"error": ...}, ...], ...]}
// A file part has its `filename`; a plain field (or a part whose file name busboy lost) has
// `filename: null`. Options: defParamCharset 'utf8' (busboy's default, latin1, reads raw UTF-8
// names as mojibake) and preservePath (its default keeps only what follows the last / or \).
// Needs busboy: `npm install --prefix .cache/node busboy@1.6.0` and NODE_PATH=.cache/node/node_modules.
'use strict';
const busboy = require('busboy');

function parse(item) {
  return new Promise((resolve) => {
    const parts = [];
    const bb = busboy({
      headers: { 'content-type': `multipart/form-data; boundary=${item.boundary}` },
      preservePath: true,
      defParamCharset: 'utf8',
    });
    bb.on('file', (name, stream, info) => {
      stream.resume();
      parts.push({ name, filename: info.filename });
    });
    bb.on('field', (name, value) => parts.push({ name, filename: null, value }));
    bb.on('error', (err) => resolve([...parts, { error: String(err.message || err) }]));
    bb.on('close', () => resolve(parts));
    bb.end(Buffer.from(item.body, 'base64'));
  });
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', async () => {
  const bodies = [];
  for (const item of JSON.parse(input)) bodies.push(await parse(item));
  const version = require('busboy/package.json').version;
  process.stdout.write(JSON.stringify({ busboy: version, bodies }));
});
