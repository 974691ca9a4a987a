// The persistence group: SAVE, BGSAVE [SCHEDULE], LASTSAVE and SHUTDOWN, over
// the snapshot service (src/snapshot/service.ts): fork-less consistent cuts of
// the pool written to `dir/dbfilename`.
import { SnapshotService } from '../snapshot/service';
import type { CommandContext, CommandSpec } from './types';

function save(ctx: CommandContext): void {
  const service = SnapshotService.of(ctx.server);
  const error = service.save();
  if (error === null) ctx.reply.ok();
  else ctx.reply.error(error === 'ERR' ? 'ERR' : `ERR ${error}`);
}

function bgsave(ctx: CommandContext, argv: Buffer[]): void {
  let schedule = false;
  if (argv.length > 1) {
    if (argv.length === 2 && argv[1]!.toString('latin1').toLowerCase() === 'schedule') schedule = true;
    else {
      ctx.reply.error('ERR syntax error');
      return;
    }
  }
  const service = SnapshotService.of(ctx.server);
  // As Redis: a BGSAVE in progress is an error even with SCHEDULE (SCHEDULE only waits for other children).
  const result = service.bgsave();
  if (result === 'in-progress') ctx.reply.error('ERR Background save already in progress');
  else if (result === 'started') ctx.reply.simple('Background saving started');
  else if (result === 'scheduled' || schedule) ctx.reply.simple('Background saving scheduled');
  else ctx.reply.error(result.error);
}

function lastsave(ctx: CommandContext): void {
  ctx.reply.integer(SnapshotService.of(ctx.server).lastSave);
}

function shutdown(ctx: CommandContext, argv: Buffer[]): void {
  let save = false;
  let nosave = false;
  let abort = false;
  for (let i = 1; i < argv.length; i++) {
    const option = argv[i]!.toString('latin1').toLowerCase();
    if (option === 'nosave') nosave = true;
    else if (option === 'save') save = true;
    else if (option === 'now' || option === 'force') continue; // no shutdown delay to skip
    else if (option === 'abort') abort = true;
    else {
      ctx.reply.error('ERR syntax error');
      return;
    }
  }
  if ((abort && argv.length !== 2) || (save && nosave)) {
    ctx.reply.error('ERR syntax error');
    return;
  }
  if (abort) {
    ctx.reply.error('ERR No shutdown in progress.');
    return;
  }
  ctx.server.log.warning('User requested shutdown...');
  if (!SnapshotService.of(ctx.server).prepareForShutdown(save, nosave)) {
    ctx.server.log.warning('Errors trying to shut down the server. Check the logs for more information.');
    ctx.reply.error('ERR Errors trying to SHUTDOWN. Check logs.');
    return;
  }
  // Let this command's batch finish; the connection closes with the server.
  setImmediate(() => ctx.server.shutdown('Shutting down on SHUTDOWN', 0));
}

export const commands: CommandSpec[] = [
  {
    name: 'save', arity: 1,
    flags: ['admin', 'noscript', 'no_async_loading', 'no_multi'],
    firstKey: 0, lastKey: 0, step: 0, acl: ['admin', 'slow', 'dangerous'],
    group: 'server', since: '1.0.0', summary: 'Synchronously save the dataset to disk',
    complexity: 'O(N) where N is the total number of keys in all databases',
    handler: save,
  },
  {
    name: 'bgsave', arity: -1,
    flags: ['admin', 'noscript', 'no_async_loading'],
    firstKey: 0, lastKey: 0, step: 0, acl: ['admin', 'slow', 'dangerous'],
    group: 'server', since: '1.0.0', summary: 'Asynchronously save the dataset to disk',
    complexity: 'O(1)',
    handler: bgsave,
  },
  {
    name: 'lastsave', arity: 1,
    flags: ['loading', 'stale', 'fast'],
    firstKey: 0, lastKey: 0, step: 0, acl: ['admin', 'fast', 'dangerous'],
    group: 'server', since: '1.0.0', summary: 'Get the UNIX time stamp of the last successful save to disk',
    complexity: 'O(1)',
    handler: lastsave,
  },
  {
    name: 'shutdown', arity: -1,
    flags: ['admin', 'noscript', 'loading', 'stale', 'no_multi', 'allow_busy'],
    firstKey: 0, lastKey: 0, step: 0, acl: ['admin', 'slow', 'dangerous'],
    group: 'server', since: '1.0.0', summary: 'Synchronously save the dataset to disk and then shut down the server',
    complexity: 'O(N) when saving, where N is the total number of keys in all databases when saving data, otherwise O(1)',
    handler: shutdown,
  },
];
