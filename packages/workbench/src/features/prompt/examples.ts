// Kontext prompting, in short (after Black Forest Labs' prompting guide for FLUX.1 Kontext), and
// example edits that fill the form.

export const TIPS: readonly string[] = [
  "Be specific: name the subject and the change (“the woman's jacket”, not “it”).",
  "Quote text to replace: Replace 'OPEN' with 'CLOSED' on the sign.",
  "Say what must stay: “…while keeping the face, pose and framing unchanged”.",
  "For a style, name it and what to keep: “as a watercolor, same composition”.",
  "Big changes go better as steps: run, then Continue editing.",
];

export interface Example {
  title: string;
  prompt: string;
  /** other fields it sets */
  values?: Record<string, unknown>;
}

export const EXAMPLES: readonly Example[] = [
  { title: "Change the sky", prompt: "Make the sky a deep sunset orange, keeping everything else unchanged" },
  {
    title: "Replace text",
    prompt: "Replace the text 'OPEN' with 'CLOSED' on the sign, keeping the same font and color",
  },
  {
    title: "Change clothing",
    prompt:
      "Change the person's jacket to a red leather jacket while keeping their face, pose and the background the same",
  },
  {
    title: "Restyle",
    prompt: "Turn this photo into a watercolor painting, keeping the same composition and subjects",
    values: { guidance: 3 },
  },
  {
    title: "Remove an object",
    prompt: "Remove the car from the street, filling in the background naturally",
  },
];
