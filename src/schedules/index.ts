/**
 * Schedules (docs/schedules.md, FC-INV-6 scheduled tasks): the Gate's scheduler and its store.
 * Run-time imports: the kernel and the Gate's face; it decides and executes nothing itself.
 */
export { createScheduler, scheduleIdOf, withoutSchedules } from './scheduler.js';
export type {
  Actor as ScheduleActor,
  RunReport,
  ScheduleChange,
  ScheduleEntryType,
  ScheduleLedger,
  Scheduler,
  SchedulerDeps,
  ScheduleView,
} from './scheduler.js';
export { createSqliteScheduleStore } from './sqlite-store.js';
export { parseScheduleRow } from './store.js';
export type { ScheduleRecord, ScheduleRunNote, ScheduleStatus, ScheduleStore } from './store.js';
