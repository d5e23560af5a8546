"""How often do uniform frames miss the asked event? Both demo variants, analytic and checked on decoded frames.

    python benchmarks/uniform_miss.py                     # both variants at full size, seed 0; decode checks on 30 clips each
    python benchmarks/uniform_miss.py --data outputs/demo/data outputs/demo_brief/data --seeds 0 1 2

Analytic share: for every question whose event is drawn (a no-parking "absent" answer draws
nothing and is left out), do the k uniform frames (segment centres, ``frames.uniform_indices``,
the sampler's ``uniform`` mode) include a frame where the generator's visibility rule
(``demo_data.event_visible``) puts the event on screen? The event times come from the generator's
plan (``demo_data.plan_dataset``; with ``--data`` replayed from each folder's demo_config.json and
checked item by item against its JSON). All three splits count.

Decoded check (``--check-clips`` train clips per variant, generated in a temporary folder unless
``--data`` is given): the clip's frame count as probed equals the plan's; for up to
``--check-questions`` miss questions at k=4, each uniform frame is decoded at full size and compared
with the clip re-rendered with and without the event (``demo_data.event_evidence``: the event is in
the frame iff the pixels where the event would be are closer to the render with it); as a positive
control, the frame at the event time must show it. Last, a "frame that differs most" selector
(the frame farthest, in mean absolute difference, from the clip's median frame): the share of
clips where that frame shows the asked event, which the brief variant's distractors are meant to
keep low. Prints Markdown tables for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from roadbuddy_utils.demo import dataset as D
from roadbuddy_utils.video import frames as F


def windows_of(plans) -> list:
    """EventWindow per question of a planned dataset (the same records event_windows() gives a folder)."""
    out = []
    for sp in plans:
        for clip in sp.clips:
            n = D.n_clip_frames(clip.duration_s, clip.fps)
            out += [D.EventWindow(qid, sp.split, clip.video, q["kind"], q["time"], clip.half_window_s, clip.fps, n,
                                  q["drawn"]) for qid, q in clip.questions.items()]
    return out


def analytic_rows(label: str, seed: int, plans, ks) -> list[str]:
    ws = windows_of(plans)
    train = [w for w in ws if w.split == "train"]
    rows = []
    for k in ks:
        m, n = D.uniform_miss(ws, k)
        mt, nt = D.uniform_miss(train, k)
        rows.append(f"| {label} | {seed} | {k} | {m / n:.3f} | {m} / {n} | {mt / nt:.3f} ({nt}) |")
    return rows


def evidence_present(frame, t, clip, qid) -> bool:
    e = D.event_evidence(frame, t, clip, qid)
    return e["event_mae"] < e["scene_mae"]


def decode_check(root: Path, plans, n_clips: int, n_questions: int) -> dict:
    """Decode a few train clips: probe vs plan, uniform frames of miss questions, event-time frames, max-change frame."""
    clips = [c for c in plans[0].clips if any(q["drawn"] for q in c.questions.values())][:n_clips]
    res = {"clips": len(clips), "frame_count_ok": 0, "questions": 0, "miss_questions": 0, "miss_frames": 0, "miss_frames_with_event": 0,
           "event_time_shown": 0, "max_change_hits": 0}
    for clip in clips:
        path = root / clip.video
        info = F.probe_video(path)
        res["frame_count_ok"] += info.n_frames == D.n_clip_frames(clip.duration_s, clip.fps)
        allf, _, _ = F.decode_frames(path, list(range(info.n_frames)), info)
        score = np.abs(allf.astype(np.int16) - np.median(allf, axis=0).astype(np.int16)).mean(axis=(1, 2, 3))
        for qid, q in clip.questions.items():
            if not q["drawn"]:
                continue
            res["questions"] += 1
            w = D.EventWindow(qid, "train", clip.video, q["kind"], q["time"], clip.half_window_s, clip.fps,
                              info.n_frames, True)
            res["max_change_hits"] += w.shows([int(np.argmax(score)) / clip.fps])
            i_ev = int(round(q["time"] * clip.fps))
            res["event_time_shown"] += evidence_present(allf[i_ev], i_ev / clip.fps, clip, qid)
            uni = F.uniform_indices(info.n_frames, 4)
            if w.shows([i / clip.fps for i in uni]) or res["miss_questions"] >= n_questions:
                continue
            res["miss_questions"] += 1
            res["miss_frames"] += len(uni)
            res["miss_frames_with_event"] += sum(evidence_present(allf[i], i / clip.fps, clip, qid) for i in uni)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="*", default=None, help="generated demo folders (default: plan both variants)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="generator seeds (without --data)")
    ap.add_argument("--ks", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--check-clips", type=int, default=30, help="train clips decoded per variant (0: no decode check)")
    ap.add_argument("--check-questions", type=int, default=10, help="miss questions whose uniform frames are decoded")
    args = ap.parse_args()

    table = ["| variant | seed | k | uniform miss share | misses / questions | train only (n) |", "|---|---|---|---|---|---|"]
    checks = []
    tmp = Path(tempfile.mkdtemp(prefix="rb-uniform-miss-"))
    if args.data:
        for folder in map(Path, args.data):
            plans = D.replay(folder)  # raises if the folder is not what the generator plans for its config
            cfg = D.DemoConfig(**__import__("json").loads((folder / "demo_config.json").read_text()))
            table += analytic_rows(cfg.variant, cfg.seed, plans, args.ks)
            if args.check_clips:
                checks.append((cfg.variant, cfg.seed, decode_check(folder, plans, args.check_clips, args.check_questions)))
    else:
        for variant in ("default", "brief"):
            for seed in args.seeds:
                table += analytic_rows(variant, seed, D.plan_dataset(D.DemoConfig(variant=variant, seed=seed)), args.ks)
            if args.check_clips:
                cfg = D.DemoConfig(variant=variant, seed=args.seeds[0], n_train_videos=args.check_clips,
                                   n_public_videos=1, n_private_videos=1)
                t0 = time.perf_counter()
                D.generate(tmp / variant, cfg, progress=False)
                print(f"generated {args.check_clips} {variant} clips for the decode check in {time.perf_counter() - t0:.0f} s")
                checks.append((variant, cfg.seed, decode_check(tmp / variant, D.plan_dataset(cfg), args.check_clips,
                                                               args.check_questions)))
    print("\n".join(table))
    if checks:
        print("\n| variant | seed | clips decoded | probed frame count = plan | miss questions (k=4) | their uniform frames "
              "showing the event | event-time frame shows it | max-change frame shows it |\n|---|---|---|---|---|---|---|---|")
        # the last two columns count the decoded clips' questions with a drawn event
        for variant, seed, r in checks:
            print(f"| {variant} | {seed} | {r['clips']} | {r['frame_count_ok']} / {r['clips']} | {r['miss_questions']} | "
                  f"{r['miss_frames_with_event']} / {r['miss_frames']} | {r['event_time_shown']} / {r['questions']} | "
                  f"{r['max_change_hits']} / {r['questions']} ({r['max_change_hits'] / max(1, r['questions']):.2f}) |")


if __name__ == "__main__":
    main()
