// From a measured value to a check result: fixed bounds, or the learned baseline (whose
// "learning" verdict passes: a check that has not seen enough history must stay quiet).

import { formatNumber, type BaselineOptions } from "../baselines.js";
import type { BaselineSettings } from "../../store/column-types.js";
import type { CheckContext, CheckResult } from "./types.js";

export function baselineOptions(settings: BaselineSettings | undefined): BaselineOptions {
  const options: BaselineOptions = {};
  if (!settings) return options;
  if (settings.sensitivity !== undefined) options.sensitivity = settings.sensitivity;
  if (settings.direction !== undefined) options.direction = settings.direction;
  if (settings.min_samples !== undefined) options.minSamples = settings.min_samples;
  if (settings.seasonality !== undefined) options.seasonality = settings.seasonality;
  if (settings.window_points !== undefined) options.window = { points: settings.window_points };
  return options;
}

export function judgeFixedBounds(
  value: number,
  min: number | undefined,
  max: number | undefined,
  label: string,
  format: (n: number) => string = formatNumber,
): CheckResult {
  const below = min !== undefined && value < min;
  const above = max !== undefined && value > max;
  const range =
    min !== undefined && max !== undefined ? `${format(min)}–${format(max)}` : min !== undefined ? `at least ${format(min)}` : `at most ${format(max!)}`;
  return {
    status: below || above ? "fail" : "pass",
    value,
    lower: min ?? null,
    upper: max ?? null,
    message: `${label} ${format(value)} is ${below || above ? "outside" : "within"} the limit (${range})`,
  };
}

export async function judgeAgainstBaseline(
  ctx: Pick<CheckContext, "now" | "judgeBaseline">,
  value: number,
  settings: BaselineSettings | undefined,
  defaults: BaselineOptions,
): Promise<CheckResult> {
  const judged = await ctx.judgeBaseline({ at: ctx.now, value }, { ...defaults, ...baselineOptions(settings) });
  const learning = judged.verdict === "learning";
  return {
    status: judged.verdict === "anomaly" ? "fail" : "pass",
    value,
    expected: learning ? null : judged.expected,
    lower: learning ? null : judged.lower,
    upper: learning ? null : judged.upper,
    anomalous: judged.verdict === "anomaly",
    message: judged.reason,
    details: { verdict: judged.verdict, model: judged.model, seasonality: judged.seasonality, samples: judged.samples, score: judged.score },
  };
}
