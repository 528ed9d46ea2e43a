import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy a test can break, between the gateway and MariaDB or Redis: `cut()` resets every open
 * connection and stops listening (new connections are refused), `blackhole()` silences them instead, and
 * `reopen()` ends either (listening on the same port again).
 */
export class TcpProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private silent = false;

  private constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
    public port: number,
  ) {}

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const proxy = new TcpProxy(target.host, target.port, 0);
    await proxy.reopen();
    return proxy;
  }

  async reopen(): Promise<void> {
    if (this.silent) {
      this.silent = false;
      for (const socket of this.sockets) socket.destroy();
      this.sockets.clear();
    }
    if (this.server) return;
    const server = createServer((client) => {
      this.sockets.add(client);
      client.once('close', () => this.sockets.delete(client));
      if (this.silent) {
        client.on('error', () => client.destroy());
        client.pause(); // accepted, never answered
        return;
      }
      const upstream = connect(this.targetPort, this.targetHost);
      this.sockets.add(upstream);
      upstream.once('close', () => this.sockets.delete(upstream));
      for (const socket of [client, upstream]) {
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  /**
   * Like a network partition: open connections stay open but nothing goes through any more, and new ones
   * are accepted and never answered. `reopen()` ends it (the stalled connections are dropped).
   */
  blackhole(): void {
    this.silent = true;
    for (const socket of this.sockets) {
      socket.unpipe();
      socket.pause();
    }
  }

  /**
   * Resets every open connection (TCP RST both ways, as a dead link or a crashed peer does: a server's next
   * write to it fails at once) and stops listening, so new connections are refused.
   */
  async cut(): Promise<void> {
    this.silent = false;
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.resetAndDestroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  close(): Promise<void> {
    return this.cut();
  }
}
