import { describe, expect, it } from "vitest";
import { formErrors } from "../../src/lib/errors.js";

const names = ["input_image", "prompt", "guidance", "seed"];

describe("server errors beside their fields", () => {
  it("splits a validation error over the fields it names", () => {
    const e = formErrors(
      {
        error: {
          type: "invalid_request",
          title: "Invalid request",
          detail:
            "guidance: must be a number from 0 to 10, got 11; prompt: required, must be a string with at least one non-space character",
          fields: ["guidance", "prompt"],
        },
      },
      400,
      names,
    );
    expect(e.fields).toEqual({
      guidance: "must be a number from 0 to 10, got 11",
      prompt: "required, must be a string with at least one non-space character",
    });
    expect(e.general).toBeNull();
  });

  it("puts an image error beside the image", () => {
    const e = formErrors(
      { error: { type: "input_image_undecodable", detail: "input_image: not a readable image (bad)" } },
      422,
      names,
    );
    expect(e.fields.input_image).toBe("not a readable image (bad)");
  });

  it("keeps what names no field as a general message with its title", () => {
    const e = formErrors(
      {
        error: {
          type: "queue_full",
          title: "Queue full",
          detail: "100 generations are queued, the limit is 100; retry after 9 s",
        },
      },
      429,
      names,
    );
    expect(e.fields).toEqual({});
    expect(e.general).toBe("Queue full: 100 generations are queued, the limit is 100; retry after 9 s");
    expect(formErrors({}, 502, names).general).toBe("the server answered 502");
  });
});
