// Preloaded with `node -r` so that every server socket of the process binds 127.0.0.1.
// kinesis-mock listens on all interfaces and has no option to change that.
"use strict";
const net = require("net");

const LOOPBACK = "127.0.0.1";
const listen = net.Server.prototype.listen;

net.Server.prototype.listen = function (...args) {
  const [first] = args;
  if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    // listen(port[, host][, backlog][, callback])
    if (typeof args[1] === "string") {
      args[1] = LOOPBACK;
    } else {
      args.splice(1, 0, LOOPBACK);
    }
  } else if (first !== null && typeof first === "object" && "port" in first) {
    args[0] = { ...first, host: LOOPBACK };
  }
  return listen.apply(this, args);
};
