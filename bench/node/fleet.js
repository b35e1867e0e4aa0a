'use strict'
// Hosts many npm serverless-mysql instances, one per simulated Lambda environment, for `python -m bench`.
//
// The Python fleet scheduler decides everything (arrivals, warm reuse, cold starts, freezing and destroying
// environments); this program only executes what it is told, so every strategy runs the very same schedule.
// Protocol: one JSON object per line on stdin, one reply per request on stdout.
//   {"op":"init","id":1,"config":{host,port,user,password,database},"options":{...serverless-mysql options}}
//   {"op":"create","id":2,"env":7}                  cold start: a new instance (module-scope client of that env)
//   {"op":"invoke","id":3,"env":7,"event":{"sql":"SELECT SLEEP(%s)","args":[0.04]},"timeout_ms":6000}
//                                                   handler: `await db.query(sql, args); await db.end()`
//   {"op":"destroy","env":7}                        no reply; the instance is frozen forever WITHOUT cleanup
//   {"op":"reset","env":7}                          no reply; Lambda killed the runtime after a timeout
//   {"op":"threads","id":4}                         {env: threadId|null} of the live instances
//   {"op":"stats","id":6}                           counters of serverless-mysql events and handshakes
//   {"op":"ping","id":5}                            round trip of the pipe itself
//   {"op":"attempts","id":7}                        {n}: connections created (handshakes started) so far
//   {"op":"exit"}                                   closes every socket (also the frozen ones) and exits
// Only loopback addresses are accepted.

const readline = require('readline')
const path = require('path')

const t0 = process.hrtime.bigint()
const serverlessMysql = require('serverless-mysql')
const mysql2 = require('mysql2')
const requireMs = Number(process.hrtime.bigint() - t0) / 1e6
const smVersion = require(path.join(path.dirname(require.resolve('serverless-mysql')), 'package.json')).version
const mysql2Version = require(path.join(path.dirname(require.resolve('mysql2')), 'package.json')).version

let baseConfig = null
let options = {}
const envs = new Map() // env id -> serverless-mysql instance
const graveyard = [] // destroyed (frozen) instances: their sockets stay open, like a vanished Lambda
// What serverless-mysql did, summed over all instances (its events, plus handshakes started through `library`).
const counters = {
  createConnection: 0,
  onConnect: 0,
  onRetry: 0,
  onConnectError: 0,
  onError: 0,
  onClose: 0,
  onKill: 0,
  onKillError: 0,
  resets: 0
}

function send (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

// serverless-mysql wraps connect errors in `new Error(err)`, dropping code and errno (#118): recover them from the text.
const WRAPPED = [
  [/Too many connections/, 'ER_CON_COUNT_ERROR', 1040],
  [/ECONNREFUSED/, 'ECONNREFUSED', null],
  [/ECONNRESET/, 'ECONNRESET', null],
  [/ETIMEDOUT/, 'ETIMEDOUT', null],
  [/Connection lost/, 'PROTOCOL_CONNECTION_LOST', null]
]

function errorInfo (err) {
  let code = err && err.code
  let errno = err && typeof err.errno === 'number' && err.errno > 0 ? err.errno : null
  let wrapped = false
  if (!code) {
    const msg = String((err && err.message) || err)
    for (const [re, c, n] of WRAPPED) {
      if (re.test(msg)) {
        code = c
        errno = errno || n
        wrapped = true
        break
      }
    }
  }
  return { code: code || 'Error', errno, wrapped, message: String((err && err.message) || err).slice(0, 200) }
}

function count (name) {
  return () => { counters[name] += 1 }
}

// Each instance gets its own driver facade (the documented `library` option): it counts handshakes, and it lets
// a reset environment (Lambda kills the runtime after a timeout) stop opening connections for good.
function newInstance () {
  const state = { reset: false }
  const library = {
    createConnection (cfg) {
      if (state.reset) throw new Error('environment reset after a timeout')
      counters.createConnection += 1
      return mysql2.createConnection(cfg)
    },
    escape: mysql2.escape,
    escapeId: mysql2.escapeId,
    format: mysql2.format
  }
  const db = serverlessMysql({
    ...options,
    library,
    config: { ...baseConfig },
    onConnect: count('onConnect'),
    onRetry: count('onRetry'),
    onConnectError: count('onConnectError'),
    onError: count('onError'),
    onClose: count('onClose'),
    onKill: count('onKill'),
    onKillError: count('onKillError')
  })
  db.__state = state
  return db
}

async function invoke (msg) {
  let db = envs.get(msg.env)
  if (!db) {
    db = newInstance()
    envs.set(msg.env, db)
  }
  // The event is the Python handler's: PyMySQL's %s placeholders become mysql2's ?.
  const sql = String(msg.event.sql).replace(/%s/g, '?')
  const t0 = process.hrtime.bigint()
  try {
    await db.query(sql, msg.event.args || [])
    const t1 = process.hrtime.bigint()
    await db.end()
    const t2 = process.hrtime.bigint()
    send({ id: msg.id, ok: true, query_ms: Number(t1 - t0) / 1e6, end_ms: Number(t2 - t1) / 1e6 })
  } catch (err) {
    send({ id: msg.id, ok: false, error: errorInfo(err) })
  }
}

function handle (line) {
  if (!line.trim()) return
  const msg = JSON.parse(line)
  switch (msg.op) {
    case 'init': {
      const host = msg.config.host
      if (host !== '127.0.0.1' && host !== 'localhost' && host !== '::1') {
        send({ id: msg.id, ok: false, error: { code: 'NOT_LOOPBACK', message: host } })
        return
      }
      baseConfig = msg.config
      options = msg.options || {}
      send({ id: msg.id, ok: true, requireMs, serverlessMysql: smVersion, mysql2: mysql2Version, node: process.version })
      return
    }
    case 'create':
      envs.set(msg.env, newInstance())
      send({ id: msg.id, ok: true })
      return
    case 'invoke':
      invoke(msg)
      return
    case 'destroy': {
      const db = envs.get(msg.env)
      if (db) {
        envs.delete(msg.env)
        graveyard.push(db)
      }
      return
    }
    case 'reset': { // Lambda killed the runtime after a timeout: the kernel closes its socket, no more work
      const db = envs.get(msg.env)
      if (db) {
        envs.delete(msg.env)
        db.__state.reset = true
        counters.resets += 1
        const client = db.getClient()
        if (client) {
          try { client.destroy() } catch (e) { /* already gone */ }
        }
      }
      return
    }
    case 'stats':
      send({ id: msg.id, ok: true, counters, live: envs.size, frozen: graveyard.length })
      return
    case 'threads': {
      const ids = {}
      for (const [env, db] of envs) {
        const client = db.getClient()
        ids[env] = client && !client._fatalError && !client._closing ? client.threadId : null
      }
      send({ id: msg.id, ok: true, ids })
      return
    }
    case 'attempts': // connect attempts as the clients count them: handshakes started, answered or not
      send({ id: msg.id, ok: true, n: counters.createConnection })
      return
    case 'ping':
      send({ id: msg.id, ok: true })
      return
    case 'exit':
      shutdown()
      return
    default:
      send({ id: msg.id, ok: false, error: { code: 'BAD_OP', message: String(msg.op) } })
  }
}

function shutdown () {
  for (const db of [...envs.values(), ...graveyard]) {
    const client = db.getClient()
    if (client) {
      try { client.destroy() } catch (e) { /* already gone */ }
    }
  }
  process.exit(0)
}

const rl = readline.createInterface({ input: process.stdin, terminal: false })
rl.on('line', (line) => {
  try {
    handle(line)
  } catch (err) {
    send({ id: null, ok: false, error: errorInfo(err) })
  }
})
rl.on('close', shutdown) // the Python side went away: never linger
process.on('unhandledRejection', (err) => send({ id: null, ok: false, error: errorInfo(err) }))
process.on('uncaughtException', (err) => send({ id: null, ok: false, error: errorInfo(err) }))
// Instances that fail a handshake get an 'error' event that nobody awaits; they must not kill the process.
