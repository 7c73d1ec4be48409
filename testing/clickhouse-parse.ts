import { query } from 'chdb';

/** Parses (does not run) a statement with the ClickHouse 26.x parser inside chdb; returns the error or ''. */
export function parseError(stmt: string): string {
  try {
    query(`EXPLAIN AST ${stmt}`, 'TSV');
    return '';
  } catch (e) {
    return (e as Error).message;
  }
}
