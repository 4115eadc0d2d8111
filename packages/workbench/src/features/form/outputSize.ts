// The output size a request will produce, shown beside the form. The rule is the engine's
// (engine/kontext_engine/resolution.py): the ~1 MP bucket, multiples of 16, closest to the input's
// shape (match_input_image) or to the asked ratio; ties go to the narrower bucket.

export const PREFERRED_RESOLUTIONS: ReadonlyArray<readonly [number, number]> = [
  [672, 1568],
  [688, 1504],
  [720, 1456],
  [752, 1392],
  [800, 1328],
  [832, 1248],
  [880, 1184],
  [944, 1104],
  [1024, 1024],
  [1104, 944],
  [1184, 880],
  [1248, 832],
  [1328, 800],
  [1392, 752],
  [1456, 720],
  [1504, 688],
  [1568, 672],
];

export function closestBucket(ratio: number): { width: number; height: number } {
  let best: readonly [number, number, number] | null = null; // (distance, w, h), compared in order
  for (const [w, h] of PREFERRED_RESOLUTIONS) {
    const cand = [Math.abs(ratio - w / h), w, h] as const;
    const before =
      !best ||
      cand[0] < best[0] ||
      (cand[0] === best[0] && (cand[1] < best[1] || (cand[1] === best[1] && cand[2] < best[2])));
    if (before) best = cand;
  }
  const [, width, height] = best as readonly [number, number, number];
  return { width, height };
}

/** null while the input's size is unknown and the shape depends on it. */
export function outputSize(
  aspectRatio: string,
  input: { width: number; height: number } | null,
): { width: number; height: number } | null {
  if (aspectRatio === "match_input_image") {
    return input && input.width > 0 && input.height > 0 ? closestBucket(input.width / input.height) : null;
  }
  const m = /^(\d+):(\d+)$/.exec(aspectRatio);
  if (!m) return null;
  return closestBucket(Number(m[1]) / Number(m[2]));
}
