export * from './config.ts';
export * from './log.ts';
export * from './ops.ts';
export * from './pipeline-settings.ts';
export * from './kafka.ts';
export * from './errors.ts';
export * from './secret-file.ts';
