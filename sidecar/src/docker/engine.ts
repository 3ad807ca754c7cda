/**
 * The Docker engine adapter: the only module that imports dockerode. It
 * exposes the few calls `collect docker` needs as plain data, so the
 * collector can be tested against a fake engine.
 */
import Docker from 'dockerode';
import { HighwaterError } from '../errors.js';

export interface EngineContainer {
  id: string;
  /** Name without the leading `/`. */
  name: string;
  /** `running`, `exited`, ... */
  state: string;
  /** Exit code once the container has stopped; null while it runs. */
  exitCode: number | null;
  oomKilled: boolean;
  labels: Record<string, string>;
}

export interface EngineEvent {
  action: 'die' | 'oom';
  id: string;
  name: string;
  /** From the `die` event's attributes; null for `oom`. */
  exitCode: number | null;
  labels: Record<string, string>;
}

export interface Engine {
  /** Containers (running and stopped) that carry label `key=value`. */
  listContainers(label: string): Promise<EngineContainer[]>;
  inspect(idOrName: string): Promise<EngineContainer>;
  /** A tar archive of `path` in the container; null when the path does not exist. */
  getArchive(idOrName: string, path: string): Promise<Buffer | null>;
  /** `die` and `oom` events of containers with the label, until the signal aborts. */
  events(label: string, signal: AbortSignal): AsyncIterable<EngineEvent>;
}

export interface EngineOptions {
  /** @default DOCKER_HOST, else /var/run/docker.sock (dockerode's rules) */
  socketPath?: string;
}

function engineError(what: string, e: unknown): HighwaterError {
  const msg = e instanceof Error ? e.message : String(e);
  return new HighwaterError('HW_ERR_DOCKER', `Docker engine: ${what}: ${msg}`, { cause: e });
}

function statusCode(e: unknown): number | undefined {
  return typeof e === 'object' && e !== null && 'statusCode' in e ? Number((e as { statusCode: unknown }).statusCode) : undefined;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks);
}

export function connectEngine(opts: EngineOptions = {}): Engine {
  const docker = opts.socketPath ? new Docker({ socketPath: opts.socketPath }) : new Docker();

  const inspect = async (idOrName: string): Promise<EngineContainer> => {
    try {
      const i = await docker.getContainer(idOrName).inspect();
      const running = i.State.Running || i.State.Restarting;
      return {
        id: i.Id,
        name: i.Name.replace(/^\//, ''),
        state: i.State.Status,
        exitCode: running ? null : i.State.ExitCode,
        oomKilled: i.State.OOMKilled,
        labels: i.Config.Labels ?? {},
      };
    } catch (e) {
      throw engineError(`inspect ${idOrName}`, e);
    }
  };

  return {
    async listContainers(label) {
      let list: Docker.ContainerInfo[];
      try {
        list = await docker.listContainers({ all: true, filters: { label: [label] } });
      } catch (e) {
        throw engineError('list containers', e);
      }
      const out: EngineContainer[] = [];
      for (const c of list) {
        try {
          out.push(await inspect(c.Id));
        } catch {
          // Removed between list and inspect.
        }
      }
      return out;
    },

    inspect,

    async getArchive(idOrName, path) {
      try {
        return await readAll(await docker.getContainer(idOrName).getArchive({ path }));
      } catch (e) {
        if (statusCode(e) === 404) return null;
        throw engineError(`copy ${path} from ${idOrName}`, e);
      }
    },

    async *events(label, signal) {
      let stream: NodeJS.ReadableStream;
      try {
        stream = await docker.getEvents({
          filters: { type: ['container'], event: ['die', 'oom'], label: [label] },
        });
      } catch (e) {
        throw engineError('follow events', e);
      }
      const destroy = () => (stream as unknown as { destroy?: () => void }).destroy?.();
      signal.addEventListener('abort', destroy, { once: true });
      let pending = '';
      try {
        for await (const chunk of stream) {
          pending += chunk.toString();
          let nl: number;
          while ((nl = pending.indexOf('\n')) !== -1) {
            const line = pending.slice(0, nl).trim();
            pending = pending.slice(nl + 1);
            const ev = parseEvent(line);
            if (ev) yield ev;
          }
        }
      } catch (e) {
        if (!signal.aborted) throw engineError('event stream', e);
      } finally {
        signal.removeEventListener('abort', destroy);
        destroy();
      }
    },
  };
}

/** One line of the engine's event stream (JSON) → an EngineEvent, or undefined. */
export function parseEvent(line: string): EngineEvent | undefined {
  if (!line) return undefined;
  let o: { Action?: string; status?: string; id?: string; Actor?: { ID?: string; Attributes?: Record<string, string> } };
  try {
    o = JSON.parse(line) as typeof o;
  } catch {
    return undefined;
  }
  const action = o.Action ?? o.status;
  if (action !== 'die' && action !== 'oom') return undefined;
  const attrs = { ...(o.Actor?.Attributes ?? {}) };
  const code = attrs.exitCode !== undefined ? Number(attrs.exitCode) : null;
  const name = attrs.name ?? '';
  delete attrs.exitCode;
  delete attrs.name;
  delete attrs.image;
  return { action, id: o.Actor?.ID ?? o.id ?? '', name, exitCode: action === 'die' ? code : null, labels: attrs };
}
