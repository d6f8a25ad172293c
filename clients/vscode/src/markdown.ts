// Rendering command results as Markdown.

export interface CommandResult {
  markdown?: string;
  tier?: string;
  model?: string;
  costUsd?: number;
  fallbackReason?: string | null;
  route?: { tier?: string; reason?: string };
  [key: string]: unknown;
}

export function resultMarkdown(title: string, result: CommandResult | null | undefined): string {
  if (!result) return `# ${title}\n\n_No answer from the server._\n`;
  const meta: string[] = [];
  if (result.tier) meta.push(`tier: **${result.tier}**`);
  if (result.model) meta.push(`model: \`${result.model}\``);
  if (typeof result.costUsd === 'number') meta.push(`cost: $${result.costUsd.toFixed(4)}`);
  if (result.fallbackReason) meta.push(`fallback: ${result.fallbackReason}`);
  if (result.route?.reason) meta.push(`route: ${result.route.reason}`);
  return `# ${title}\n\n${meta.length ? `<sub>${meta.join(' · ')}</sub>\n\n` : ''}${result.markdown ?? ''}\n`;
}

/** `tandem.stats` -> Markdown: today's spend first, then every section as a table. */
export function statsMarkdown(stats: Record<string, unknown> | null | undefined): string {
  if (!stats) return '# Tandem stats\n\n_No answer from the server._\n';
  const lines = ['# Tandem stats', ''];
  const money = (v: unknown) => (typeof v === 'number' ? `$${v.toFixed(4)}` : String(v));
  lines.push(`- cloud spend today: **${money(stats.costUsd)}**`);
  if ('savedUsd' in stats) lines.push(`- saved by staying local: **${money(stats.savedUsd)}**`);
  lines.push('');
  for (const [key, value] of Object.entries(stats)) {
    if (key === 'costUsd' || key === 'savedUsd') continue;
    lines.push(`## ${key}`, '');
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      lines.push('| | |', '|---|---|');
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        lines.push(`| ${k} | ${cell(v)} |`);
      }
    } else {
      lines.push(cell(value));
    }
    lines.push('');
  }
  return lines.join('\n');
}

function cell(v: unknown): string {
  const text = typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v);
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}
