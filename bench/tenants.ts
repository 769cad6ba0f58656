import type { Figure } from './lib/report.js';
import type { SimProcess } from './lib/processes.js';
export async function tenantsSection(_o: { sim: SimProcess; log: (m: string) => void; tenants: number; budgetMs: number }): Promise<Figure[]> { return []; }
