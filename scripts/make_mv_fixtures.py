"""Write the multi-camera fixtures the package ships: project-written questions in the real files' shapes.

    python scripts/make_mv_fixtures.py            # writes roadbuddy_utils/multiview/fixtures/mv_*.json
    python scripts/make_mv_fixtures.py --check    # compares with the shipped files, writes nothing

The real RoboSense Track 1 and DriveBench question files may be read to develop against but never committed
(the data is not ours to redistribute), so the demo and the tests use these instead. Every sentence below
is the project's own; the tokens, log names, timestamps and object positions are made up. What is copied
from the real files is their structure only, quirk by quirk:

* ``mv_questions.json``, shaped as a converted RoboSense phase-1 file: a JSON list of ``{scene_token,
  frame_token, question, answer: "", category, img_paths}``; categories perception / prediction /
  planning; ``img_paths`` with the six ``CAM_*`` names in the order FRONT, FRONT_RIGHT, FRONT_LEFT, BACK,
  BACK_RIGHT, BACK_LEFT and nuScenes-like relative paths ``samples/CAM_X/<log>__CAM_X__<timestamp>.jpg``;
  object tags in pixels with one decimal (``<c1,CAM_FRONT,714.2,501.7>``, x from 2 to 4 digits), zero, one
  or two tags per question; about 20 questions per frame, several frames per scene. Question kinds, each
  with the phrase the router keys on: MCQ with the options in the text ("... options: A. ... B. ..."),
  one MCQ whose options have no "options:" before them, yes/no (prediction, one or two objects), the
  open "notice first / second / third" prediction question, per-object and scene-wide open questions
  (perception and planning), and planning scene questions that start like a yes/no question. One
  question is repeated on its frame (phase 2 repeats scene / frame / question triples).
* ``mv_answered.json``, shaped as DriveBench's sample: 19 items on 3 frames of 3 scenes (8 + 3 + 8), keys
  ``scene_token, frame_token, question_type, question, answer, tag, image_path``; ``question_type``
  perception 5 / prediction 4 / planning 7 / behavior 3; ``tag`` a one-element list (0 MCQ or yes/no,
  1 planning VQA, 2 perception VQA, 3 prediction VQA); ``image_path`` under ``data/nuscenes/samples/`` in
  DriveBench's camera order (FRONT, FRONT_LEFT, FRONT_RIGHT, BACK, BACK_LEFT, BACK_RIGHT: the loader
  reorders it); tags normalised to four decimals, in questions and in answers; answers a lone letter,
  "Yes." / "No." or open text; behaviour options of two sentences each ("A. ... straight. It is ...").
  Routed: Prediction-MCQs 7 (2 open "notice"), Planning object 4, Perception-MCQs 3, Planning scene 3,
  Perception scene 2, no Perception object description: the same mix as the real sample.

Deterministic: the same files on every run (fixed seed, tokens from hashes of fixed strings).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "roadbuddy_utils" / "multiview" / "fixtures"
QUESTIONS, ANSWERED = "mv_questions.json", "mv_answered.json"

ROBOSENSE_ORDER = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_RIGHT", "CAM_BACK_LEFT")
DRIVEBENCH_ORDER = ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")
CAMERA_WEIGHTS = (8, 3, 3, 2, 1, 1)  # most tagged objects are in front, as in the real files
W, H = 1600, 900

# ---------------------------------------------------------------------------------------------- wording

SCENE_OBJECTS = "Which important objects in the current scene should the ego vehicle keep in mind when it plans its next moves?"
OBJECT_DESCRIPTION = "Please write a short visual description of {a}."
MOTION_MCQ = "How is object {a} moving at the moment? Pick the right one from these options: {opts}"
MOTION_MCQ_BARE = "Which way is object {a} heading? {opts}"  # options without "options:" before them
MOTIONS = ["Moving forward.", "Turning left.", "Turning right.", "Standing still.", "Reversing.",
           "Backing into a parking space."]
NOTICE = ("Which object must the ego vehicle notice first on its way to the next position, what is that object "
          "doing, and what should the ego vehicle do about it? Which objects should it notice second and third, "
          "in what state are they, and how should the ego vehicle respond to each?")
YESNO_EGO = "Would {a} end up in the path of the ego vehicle?"
YESNO_PAIR = "Will {a} move into the path of {b}?"
YESNO_REACT = "Will {a} alter its motion because of {b}?"
YESNO_AWARE = "Does {a} need to pay attention to {b}?"
PLAN_OBJECT = "What could the ego vehicle do in view of {a}, for what reason, and how likely is that choice?"
PLAN_CRASH = "Which ego vehicle manoeuvres could end in a crash with {a}?"
PLAN_PAIR = "Given what {a} is doing, how might {b} respond?"
PLAN_SAFE = "Which safe actions can the ego vehicle take in this situation?"
PLAN_DANGER = "Which dangerous actions should the ego vehicle avoid here?"
PLAN_COMMENT = "Give your comment on this scene as a careful driver would."
PLAN_RARE = [  # one each, spread over the frames; the first two start like yes/no questions
    "Are there any issues worth noting for a driver passing through here?",
    "Do you see noteworthy issues in this scene that a driver should handle?",
    "Which situation affects vehicles driving through this scene the most?",
    "Which conditions does this scene impose on the vehicles driving through it?",
    "Name the conditions in this scene that matter for safe driving.",
    "What impact on driving does the current road surface have?",
    "How big an impact does this situation make on the ego vehicle's choice of speed?",
    "Rank the priority of the objects the ego vehicle must watch, highest first.",
    "Which traffic signal should the ego vehicle obey at this moment?",
]

BEHAVIOUR_Q = "What is the ego vehicle doing right now? Pick the right one from these options: {opts}"
STEERING = ["The ego car keeps a straight course.", "The ego car turns gently to the left.",
            "The ego car turns gently to the right.", "The ego car turns sharply to the left.",
            "The ego car turns sharply to the right."]
SPEED = ["It is standing still.", "It is rolling slowly.", "It is moving at an ordinary pace.", "It is moving fast.",
         "It is moving very fast."]
SIGN_YESNO = "Is {a} a road sign or a temporary barrier?"

KINDS = ["silver hatchback", "white delivery van", "dark blue estate car", "red pickup truck", "grey minibus",
         "cyclist in a yellow jacket", "black saloon", "green city bus"]
PLACES = {"CAM_FRONT": "ahead of", "CAM_FRONT_LEFT": "ahead and to the left of", "CAM_FRONT_RIGHT":
          "ahead and to the right of", "CAM_BACK": "behind", "CAM_BACK_LEFT": "behind and to the left of",
          "CAM_BACK_RIGHT": "behind and to the right of"}
VIEWS = {"CAM_FRONT": "the front camera", "CAM_FRONT_LEFT": "the front-left camera", "CAM_FRONT_RIGHT":
         "the front-right camera", "CAM_BACK": "the rear camera", "CAM_BACK_LEFT": "the rear-left camera",
         "CAM_BACK_RIGHT": "the rear-right camera"}


# ---------------------------------------------------------------------------------------------- made-up ids

def token(*parts) -> str:
    """32 hex digits, as nuScenes tokens look; from a hash of fixed strings (no real token)."""
    return hashlib.md5("|".join(["roadbuddy-mv-fixture", *map(str, parts)]).encode()).hexdigest()


def log_name(rng: random.Random, k: int) -> str:
    site, zone = rng.choice([("n101", "-0400"), ("n202", "+0800")])
    return (f"{site}-2019-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}-{rng.randint(8, 19):02d}-"
            f"{rng.randint(0, 59):02d}-{k:02d}{zone}")


def image_paths(rng: random.Random, log: str, order, prefix: str) -> dict:
    stamp = rng.randint(1_550_000_000_000_000, 1_560_000_000_000_000)
    return {cam: f"{prefix}samples/{cam}/{log}__{cam}__{stamp + 7843 * k + rng.randint(0, 999)}.jpg"
            for k, cam in enumerate(order)}


def objects(rng: random.Random, n: int, normalised: bool) -> list[dict]:
    out = []
    for k in range(n):
        cam = rng.choices(ROBOSENSE_ORDER, CAMERA_WEIGHTS)[0]
        x = rng.choice([rng.uniform(20, 99), rng.uniform(100, 999), rng.uniform(1000, 1580)])
        y = rng.uniform(420, 700)
        tag = (f"<c{k + 1},{cam},{x / W:.4f},{y / H:.4f}>" if normalised else f"<c{k + 1},{cam},{x:.1f},{y:.1f}>")
        out.append({"tag": tag, "camera": cam, "kind": KINDS[rng.randrange(len(KINDS))]})
    return out


def options(rng: random.Random, texts: list[str], n: int) -> tuple[str, str]:
    """``("A. x B. y ...", correct letter)`` from ``n`` of ``texts`` in a seeded order."""
    picked = rng.sample(texts, n)
    letters = "ABCDE"[:n]
    return " ".join(f"{l}. {t}" for l, t in zip(letters, picked)), letters[rng.randrange(n)]


# ---------------------------------------------------------------------------------------------- phase-1 shape

def questions(seed: int = 11, n_scenes: int = 4) -> list[dict]:
    rng = random.Random(seed)
    out = []
    rare = list(PLAN_RARE)
    for s in range(n_scenes):
        scene, log = token("scene", s), log_name(rng, s)
        for f in range(rng.randint(2, 3)):
            frame = token("frame", s, f)
            paths = image_paths(rng, log, ROBOSENSE_ORDER, "")
            objs = objects(rng, rng.randint(3, 5), normalised=False)
            tags = [o["tag"] for o in objs]
            qs: list[tuple[str, str]] = [("perception", SCENE_OBJECTS)]
            if s or f:  # most frames have a motion MCQ; the very first has none
                opts, _ = options(rng, MOTIONS, 4)
                qs.append(("perception", MOTION_MCQ.format(a=rng.choice(tags), opts=opts)))
            qs += [("perception", OBJECT_DESCRIPTION.format(a=t)) for t in tags]
            if f % 2 == 0:
                qs.append(("prediction", NOTICE))
            qs += [("prediction", YESNO_EGO.format(a=t)) for t in tags]
            for a, b in zip(tags, tags[1:]):
                qs.append(("prediction", rng.choice([YESNO_PAIR, YESNO_PAIR, YESNO_REACT, YESNO_AWARE]).format(a=a, b=b)))
            qs += [("planning", PLAN_OBJECT.format(a=t)) for t in tags]
            qs += [("planning", PLAN_CRASH.format(a=t)) for t in rng.sample(tags, 2)]
            if rng.random() < 0.3:
                qs.append(("planning", PLAN_PAIR.format(a=tags[0], b=tags[-1])))
            qs += [("planning", PLAN_SAFE), ("planning", PLAN_DANGER)]
            if rng.random() < 0.6:
                qs.append(("planning", PLAN_COMMENT))
            if rare:
                qs.append(("planning", rare.pop(0)))
            if s == 1 and f == 0:  # the one bare MCQ and the one repeated question
                opts, _ = options(rng, MOTIONS[:3], 3)
                qs.append(("perception", MOTION_MCQ_BARE.format(a=tags[1], opts=opts)))
                qs.append(qs[2])
            out += [{"scene_token": scene, "frame_token": frame, "question": q, "answer": "", "category": c,
                     "img_paths": dict(paths)} for c, q in qs]
    return out


# ---------------------------------------------------------------------------------------------- DriveBench shape

def _scene_answer(objs: list[dict]) -> str:
    parts = [f"a {o['kind']} {PLACES[o['camera']]} the ego vehicle" for o in objs]
    ids = ", ".join(o["tag"] for o in objs[:-1]) + f" and {objs[-1]['tag']}"
    return f"The scene holds {', '.join(parts[:-1])} and {parts[-1]}. They are tagged {ids}."


def _notice_answer(objs: list[dict], action: str) -> str:
    states = ["is parked", "is driving on", "is waiting"]
    ords = ["First", "Next", "Last"]
    return " ".join(f"{w}, watch the {o['kind']} seen by {VIEWS[o['camera']]}: it {st}, so the ego vehicle should "
                    f"{action}." for w, o, st in zip(ords, objs, states))


def answered(seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    out = []

    def add(scene, frame, paths, qtype, q, a, tag):
        out.append({"scene_token": scene, "frame_token": frame, "question_type": qtype, "question": q, "answer": a,
                    "tag": [tag], "image_path": dict(paths)})

    def behaviour():
        opts = [f"{st} {sp}" for st, sp in zip(rng.sample(STEERING, 4), rng.sample(SPEED, 4))]
        text, letter = options(rng, opts, 4)
        return BEHAVIOUR_Q.format(opts=text), letter

    for s, (full, action) in enumerate([(True, "carry on at a steady speed"), (False, None),
                                        (True, "turn left once the way is clear")]):
        scene, frame = token("db-scene", s), token("db-frame", s)
        paths = image_paths(rng, log_name(rng, 40 + s), DRIVEBENCH_ORDER, "data/nuscenes/")
        objs = objects(rng, 3, normalised=True)
        a = objs[0]["tag"]
        if full:
            add(scene, frame, paths, "perception", SCENE_OBJECTS, _scene_answer(objs), 2)
        opts, letter = options(rng, MOTIONS[:4], 3)
        add(scene, frame, paths, "perception", MOTION_MCQ.format(a=a, opts=opts), "A" if s == 0 else letter, 0)
        if full:
            add(scene, frame, paths, "prediction", NOTICE, _notice_answer(objs, action), 3)
            add(scene, frame, paths, "prediction", *((SIGN_YESNO.format(a=a), "No.") if s == 0 else
                                                     (YESNO_EGO.format(a=a), "Yes.")), 0)
            add(scene, frame, paths, "planning", PLAN_OBJECT.format(a=a),
                f"The ego vehicle should {action}. Nothing about this object makes that unsafe, so it is likely.", 1)
            add(scene, frame, paths, "planning", PLAN_CRASH.format(a=a), "Reversing into it.", 1)
        add(scene, frame, paths, "planning", PLAN_SAFE,
            ["Carry on at a steady speed, speed up a little, or slow down smoothly.",
             "Slow down smoothly, stop gently, keep the lane, or move over to the left lane and turn left.",
             "Turn left after the gap, easing off beforehand."][s], 1)
        q, letter = behaviour()
        add(scene, frame, paths, "behavior", q, letter, 0)
    return out


# ---------------------------------------------------------------------------------------------- files

def texts() -> dict[str, str]:
    return {name: json.dumps(data, indent=1, ensure_ascii=False) + "\n"
            for name, data in ((QUESTIONS, questions()), (ANSWERED, answered()))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the shipped files; write nothing")
    args = ap.parse_args(argv)
    bad = 0
    for name, text in texts().items():
        path = OUT / name
        if args.check:
            same = path.is_file() and path.read_text(encoding="utf-8") == text
            print(f"{path.relative_to(REPO)}: {'up to date' if same else 'DIFFERS'}")
            bad += not same
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(REPO)} ({len(json.loads(text))} items)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
