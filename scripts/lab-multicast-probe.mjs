// Proves that multicast crosses the lab's bridge, run inside a lab node through
// `lab.sh exec NODE node scripts/lab-multicast-probe.mjs ...`. Plain JavaScript so that it runs
// with bare node in any namespace. Every mode is bounded by --timeout and prints one line.
//
//   recv    --addr A --port P [--group G] --expect TEXT --timeout MS   waits for TEXT on G:P
//   send    --addr A --port P [--group G] --message TEXT --timeout MS  sends TEXT every 100 ms
//   publish --addr A --name N --type T --timeout MS                    bonjour-service publish
//   browse  --addr A --name N --type T --timeout MS                    waits until N is found
//
// "ready" is printed once a receiver or publisher listens, so a caller can start the sender.
// Exit codes: 0 success (or a sender/publisher that ran out its time), 1 timeout, 2 bad usage.
import dgram from "node:dgram";
import { parseArgs } from "node:util";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    addr: { type: "string" },
    group: { type: "string", default: "224.0.0.251" },
    port: { type: "string", default: "0" },
    expect: { type: "string", default: "" },
    message: { type: "string", default: "" },
    name: { type: "string", default: "" },
    type: { type: "string", default: "shoal-lab-probe" },
    timeout: { type: "string", default: "10000" },
  },
});

const mode = positionals[0];
const addr = values.addr;
const port = Number(values.port);
const timeoutMs = Number(values.timeout);
if (!addr || !Number.isFinite(timeoutMs) || timeoutMs <= 0)
  usage("--addr and --timeout are needed");

function usage(why) {
  console.error(`lab-multicast-probe: ${why}`);
  process.exit(2);
}

/** Ends the process after the deadline: success for senders, failure for waiters. */
function deadline(code, line) {
  setTimeout(() => {
    console.log(line);
    process.exit(code);
  }, timeoutMs).unref?.();
}

function recv() {
  if (!port || !values.expect) usage("recv needs --port and --expect");
  const socket = dgram.createSocket({ type: "udp4", reuseAddr: true });
  socket.on("error", (error) => usage(`socket: ${error.message}`));
  socket.on("message", (message, from) => {
    if (message.toString() !== values.expect) return;
    console.log(`received ${values.expect} from ${from.address}`);
    process.exit(0);
  });
  // Bound to the wildcard: a socket bound to the unicast address would receive no multicast.
  socket.bind(port, "0.0.0.0", () => {
    socket.addMembership(values.group, addr);
    console.log("ready");
  });
  deadline(1, `timeout: nothing from ${values.group}:${port} within ${timeoutMs} ms`);
}

function send() {
  if (!port || !values.message) usage("send needs --port and --message");
  const socket = dgram.createSocket({ type: "udp4", reuseAddr: true });
  socket.on("error", (error) => usage(`socket: ${error.message}`));
  socket.bind(0, addr, () => {
    socket.setMulticastInterface(addr);
    socket.setMulticastTTL(1);
    let sent = 0;
    const tick = () => {
      socket.send(values.message, port, values.group, () => {
        sent += 1;
      });
    };
    tick();
    setInterval(tick, 100);
    setTimeout(() => {
      console.log(`sent ${sent} datagram(s)`);
      process.exit(0);
    }, timeoutMs);
  });
}

async function bonjour() {
  if (!values.name) usage(`${mode} needs --name`);
  const { Bonjour } = await import("bonjour-service");
  // `interface` picks the multicast interface; `bind: "0.0.0.0"` keeps multicast arriving.
  const instance = new Bonjour({ interface: addr, bind: "0.0.0.0" }, (error) =>
    usage(`mdns: ${error?.message ?? error}`),
  );
  if (mode === "publish") {
    const service = instance.publish({
      name: values.name,
      type: values.type,
      port: 7420,
      txt: { a: addr },
    });
    service.on("up", () => console.log("ready"));
    service.on("error", (error) => usage(`publish: ${error?.message ?? error}`));
    setTimeout(() => {
      instance.unpublishAll(() => {
        instance.destroy();
        console.log("unpublished");
        process.exit(0);
      });
    }, timeoutMs);
    return;
  }
  const browser = instance.find({ type: values.type }, (service) => {
    if (service.name !== values.name) return;
    console.log(`found ${service.name} txt.a=${service.txt?.a ?? ""}`);
    process.exit(0);
  });
  // The browser queries once; ask again until the deadline.
  setInterval(() => browser.update(), 500);
  console.log("ready");
  deadline(1, `timeout: ${values.name}._${values.type}._tcp not found within ${timeoutMs} ms`);
}

if (mode === "recv") recv();
else if (mode === "send") send();
else if (mode === "publish" || mode === "browse") await bonjour();
else usage(`unknown mode '${mode ?? ""}' (recv, send, publish, browse)`);
