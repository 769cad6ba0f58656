import type { Figure } from './lib/report.js';
import type { SimProcess } from './lib/processes.js';
export async function tokenSections(_o: { sim: SimProcess; log: (m: string) => void; budgetMs: number }): Promise<Figure[]> { return []; }
