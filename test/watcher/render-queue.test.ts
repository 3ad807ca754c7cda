import { describe, expect, it } from 'vitest';
import { RenderQueue } from '../../sidecar/src/watcher/render-queue.js';

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

describe('RenderQueue', () => {
  it('runs jobs one at a time, in the order pushed', async () => {
    const q = new RenderQueue();
    const log: string[] = [];
    let running = 0;
    let most = 0;
    for (const [name, ms] of [
      ['a', 30],
      ['b', 1],
      ['c', 10],
    ] as const) {
      q.push(name, async () => {
        most = Math.max(most, ++running);
        log.push(`start ${name}`);
        await tick(ms);
        log.push(`end ${name}`);
        running--;
      });
    }
    expect(q.size).toBe(3);
    await q.idle();
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
    expect(most).toBe(1);
    expect(q.size).toBe(0);
  });

  it('a failing job goes to onError with its name, and the next job still runs', async () => {
    const errors: Array<[string, unknown]> = [];
    const q = new RenderQueue((what, e) => errors.push([what, e]));
    const done: string[] = [];
    const boom = new Error('boom');
    q.push('first', async () => {
      throw boom;
    });
    q.push('second', async () => void done.push('second'));
    await q.idle();
    expect(errors).toEqual([['first', boom]]);
    expect(done).toEqual(['second']);
  });

  it('an onError that throws does not stop the queue', async () => {
    const q = new RenderQueue(() => {
      throw new Error('bad callback');
    });
    const done: string[] = [];
    q.push('x', async () => {
      throw new Error('job');
    });
    q.push('y', async () => void done.push('y'));
    await q.idle();
    expect(done).toEqual(['y']);
  });

  it('idle() also waits for jobs that jobs push (a post-mortem queued behind its dump)', async () => {
    const q = new RenderQueue();
    const done: string[] = [];
    q.push('dump', async () => {
      await tick();
      q.push('state', async () => {
        await tick(20);
        done.push('state');
      });
      done.push('dump');
    });
    await q.idle();
    expect(done).toEqual(['dump', 'state']);
  });

  it('idle() on an empty queue resolves at once', async () => {
    await new RenderQueue().idle();
  });
});
