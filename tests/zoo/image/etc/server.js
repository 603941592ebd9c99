// Node.js's own http module, as the smallest real Node server is written:
// the whole server is this callback on node's event loop.
const http = require("http");
http.createServer((req, res) => res.end("hello from node\n")).listen(12345, "0.0.0.0");
