/**
 * Schedules (docs/schedules.md, FC-INV-6 scheduled tasks): the Gate's scheduler and its store.
 * Run-time imports: the kernel and the Gate's face; it decides and executes nothing itself.
 */
export { createScheduler } from './scheduler.js';
export type { RunReport, Scheduler, SchedulerDeps } from './scheduler.js';
export { scheduleIdOf } from './port.js';
export type { Actor as ScheduleActor, ScheduleEntryType, ScheduleLedger } from './port.js';
export { withoutSchedules } from './creation.js';
export { createScheduleStanding } from './standing.js';
export type { StandingDeps, StandingEntry, StandingRun } from './standing.js';
export type { ScheduleChange, ScheduleView } from './changes.js';
export { createSqliteScheduleStore } from './sqlite-store.js';
export { parseDueRows, parseScheduleRow } from './store.js';
export type { ScheduleRecord, ScheduleRunNote, ScheduleStatus, ScheduleStore } from './store.js';
