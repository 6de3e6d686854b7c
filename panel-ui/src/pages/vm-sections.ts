// What the VM page's sections (snapshots, password, reinstall) share: the VM as the page last
// drew it, and news of the jobs they started, which the page learns by polling and from its event
// stream.
import type { Schemas } from '../api';

export type CustomerVm = Schemas['CustomerVm'];
export type Job = Schemas['JobView'];

/** A section of the VM page, told the VM and its jobs each time the page redraws. */
export interface Section {
  element: HTMLElement;
  update(vm: CustomerVm, jobs: Job[]): void;
  /** The page is left: let go of what outlives it (observers, charts). */
  stop?(): void;
}

/** A job still at work: pending, or undoing what it did. Any other state is final. */
export function underWay(job: Job): boolean {
  return job.state === 'pending' || job.state === 'compensating';
}

/** What a finished job came to, in words for the person who asked for it. */
export function outcome(job: Job, done: string, what: string): [string, 'ok' | 'error'] {
  if (job.state === 'succeeded') return [done, 'ok'];
  const why = job.failure ? `: ${job.failure}` : '';
  const state = job.state === 'parked' ? 'stopped and waits for an operator' : 'did not complete';
  return [`${what} ${state}${why}.`, 'error'];
}

/**
 * Jobs a section started and waits for: `then` runs once, when the job is seen finished in a
 * later update.
 */
export function jobWatcher(): { watch(id: number, then: (job: Job) => void): void; update(jobs: Job[]): void } {
  const waiting = new Map<number, (job: Job) => void>();
  return {
    watch(id, then) {
      waiting.set(id, then);
    },
    update(jobs) {
      for (const job of jobs) {
        const then = waiting.get(job.id);
        if (!then || underWay(job)) continue;
        waiting.delete(job.id);
        then(job);
      }
    },
  };
}

/** A signature of the jobs of `kinds` and their states: when it changes, one of them moved on. */
export function jobsSignature(jobs: Job[], kinds: Schemas['JobKind'][]): string {
  return jobs.filter((j) => kinds.includes(j.kind)).map((j) => `${j.id}:${j.state}`).join(',');
}
