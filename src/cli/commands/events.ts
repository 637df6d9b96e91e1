// `shoal events [--follow] [--since N]`: the event log, one line per event.
import type { Command } from "commander";
import type { ShoalEvent } from "../../core/types.ts";
import { type CliContext, clientFor } from "../context.ts";
import { clockTime } from "../format.ts";
import { guard, parseCount, withApiOptions } from "./shared.ts";

interface EventsOptions {
  dataDir?: string;
  json?: boolean;
  follow?: boolean;
  since: number;
}

/** Wide enough for the usual types (`task.started`, `service.created`) to line up. */
const typeColumnWidth = 18;

export function registerEvents(program: Command, context: CliContext): void {
  withApiOptions(program.command("events"))
    .description("print the event log; --follow keeps printing new events")
    .option("-f, --follow", "keep the stream open and print events as they happen")
    .option("--since <seq>", "only events after this sequence number", parseCount, 0)
    .action(
      guard(context, async (options: EventsOptions) => {
        const client = clientFor(context, options);
        const stream = client.events({ since: options.since, follow: options.follow === true });
        for await (const event of stream)
          context.out.write(eventLine(event, options.json === true));
      }),
    );
}

/** With --json, one compact JSON event per line, so a follower can pipe them into jq. */
export function eventLine(event: ShoalEvent, asJson: boolean): string {
  if (asJson) return `${JSON.stringify(event)}\n`;
  return `${clockTime(event.at)}  ${event.type.padEnd(typeColumnWidth)}  ${event.message}\n`;
}
