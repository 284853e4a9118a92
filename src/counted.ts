// A count and its noun, in the singular for one: "1 check", "2 checks" (every noun Pulse counts
// takes an s).

export const counted = (n: number, noun: string) => `${n} ${n === 1 ? noun : `${noun}s`}`;
