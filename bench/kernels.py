"""Convolution: `apply_kernel` against OpenCV's `filter2D` (the issue's peer), and a kernel change
on a 512² photo as `gradio_client` sees it on loopback."""

from __future__ import annotations

import cv2
import numpy as np

from bench.harness import Row, at_most, interleave, ms, percentile, times
from bench.inputs import photo_files, photos

AREA = "kernels"
NEEDS: set[str] = set()


def rows(ctx) -> list[Row]:
    from vlmlab.kernels import apply_kernel, format_kernel

    image = np.asarray(photos(1, (1024, 1024))[0])  # (1024, 1024, 3) uint8
    out = []
    for size in (3, 7):
        kernel = np.random.default_rng(size).normal(size=(size, size)).astype(np.float32)

        def ours(_, kernel=kernel):
            return apply_kernel(image, kernel, padding="reflect")

        def peer(_, kernel=kernel):  # the same float32 result: reflect-101 border, no flip
            return cv2.filter2D(image, cv2.CV_32F, kernel, borderType=cv2.BORDER_REFLECT_101)

        np.testing.assert_allclose(ours(0), peer(0), rtol=1e-5, atol=1e-3)  # same numbers
        pair = interleave(ours, peer, repeats=ctx.scaled(40), warmup=3)
        out.append(
            at_most(
                AREA, f"apply_kernel 1024² RGB, {size}×{size}, reflect", "cv2.filter2D", pair, 1.5
            )
        )
    out += kernel_change(ctx, format_kernel)
    return out


def kernel_change(ctx, format_kernel) -> list[Row]:
    """A user edits the kernel: one `apply_kernel` event round trip on a 512² photo."""
    from bench.app import BrowserLike

    what = "kernel change, 512² photo, gradio_client"
    from gradio_client import handle_file

    client = ctx.client()
    (path,) = photo_files(ctx.folder / "photos", 1, (512, 512))
    kernels = [
        format_kernel(np.random.default_rng(i).normal(size=(3, 3)).round(2)) for i in range(40)
    ]

    # The same handler in this process, with the page's start values: what the serving adds.
    from demo.kernels_tab import show_result

    page = BrowserLike(client, "apply_kernel")
    start_values = page.defaults[2:]

    def change(i):
        return client.predict(
            handle_file(path), kernels[i % len(kernels)], api_name="/apply_kernel"
        )

    def handler(i):
        return show_result(path, kernels[i % len(kernels)], *start_values)

    pair = interleave(change, handler, repeats=ctx.scaled(20), warmup=2)
    seconds = pair.ours_times
    median = pair.ours
    photo = page.upload(path)
    browser = interleave(
        lambda i: page.call(photo, kernels[i % len(kernels)]),
        handler,
        repeats=ctx.scaled(20),
        warmup=2,
    )
    return [Row(
        AREA, what, "the handler alone, in-process", ms(median), ms(pair.peer), times(pair.ratio),
        target="≤ 100 ms", ok=median <= 0.100,
        note=f"p95 {ms(percentile(seconds, 95))} over {len(seconds)} changes: gradio_client uploads the photo again (a browser "
        "would not), queue, filter, render, and the client fetching the result image",
    ), Row(
        AREA, "kernel change, 512² photo, HTTP API like a page", "the handler alone, in-process",
        ms(browser.ours), ms(browser.peer), times(browser.ratio), "≤ 100 ms", browser.ours <= 0.100,
        note=f"p95 {ms(percentile(browser.ours_times, 95))}: photo uploaded once, events read as "
        "they stream, result image fetched (what a browser does)",
    )]  # fmt: skip
