// Preload (`node --require ./loopback.js ...`) that keeps a Node server on the loopback
// interface: every TCP listen() that would bind all interfaces (no host, 0.0.0.0 or ::) binds
// 127.0.0.1 instead. The npm peers (server-everything, supergateway) bind all interfaces and
// offer no option to change it; mcp-gateway's tests never listen beyond loopback.
'use strict';
const net = require('net');

const LOOPBACK = '127.0.0.1';
const ANY = new Set([undefined, null, '', '0.0.0.0', '::', '::0']);
const listen = net.Server.prototype.listen;

net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (first !== null && typeof first === 'object' && !Array.isArray(first)) {
    // listen(options[, cb]); a `path` (unix socket) or `handle` is left alone.
    if (first.path === undefined && first.handle === undefined && first.fd === undefined && ANY.has(first.host)) {
      args[0] = { ...first, host: LOOPBACK };
    }
  } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    // listen(port[, host][, backlog][, cb])
    if (typeof args[1] === 'string') {
      if (ANY.has(args[1])) args[1] = LOOPBACK;
    } else {
      args.splice(1, 0, LOOPBACK);
    }
  } else if (first === undefined || typeof first === 'function') {
    // listen([cb]): any free port
    args.splice(0, 0, 0, LOOPBACK);
  }
  return listen.apply(this, args);
};
