"""`conrmodel train`: train the UDP detector and the renderer end to end on WebDataset shards."""

from __future__ import annotations

import json

import click

from conrmodel.train.config import preset_names


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--shards",
    required=True,
    metavar="PATTERN",
    help="Training shards: brace pattern, glob, OUT dir, or any URL webdataset opens.",
)
@click.option("--val-shards", metavar="PATTERN", help="Validation shards (L_photo logged during training).")
@click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False), help="Run directory.")
@click.option(
    "--preset",
    type=click.Choice(preset_names()),
    default="tiny",
    show_default=True,
    help="Hyper-parameter preset (conrmodel/train/presets/*.yaml).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="YAML file overriding the preset.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one setting, e.g. --set optim.lr=3e-4 --set data.workers=4 (repeatable).",
)
@click.option("--steps", type=int, help="Total training steps (optim.steps).")
@click.option(
    "--stop-at",
    type=int,
    help="Stop at this step with a checkpoint, schedule unchanged "
    "(for job time limits; continue with --resume).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue exactly from RUN_DIR/checkpoints/latest.pt with the run's "
    "saved config (--preset/--config are ignored; --set and --steps still apply).",
)
@click.option(
    "--backgrounds",
    type=click.Path(exists=True, file_okay=False),
    help="Folder of background images for the detector's input (procedural if absent).",
)
@click.option(
    "--vgg-weights",
    type=click.Path(exists=True, dir_okay=False),
    help="torchvision VGG-19 state dict for L_vgg (without it L_vgg is off, with a warning).",
)
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N (default: the config's, auto).")
@click.option("--seed", type=int, help="Random seed (train.seed).")
@click.option("--no-progress", is_flag=True, help="No progress bar (logs still go to log.jsonl).")
def command(
    shards,
    val_shards,
    run_dir,
    preset,
    config_file,
    overrides,
    steps,
    stop_at,
    resume,
    backgrounds,
    vgg_weights,
    device,
    seed,
    no_progress,
):
    """Train CoNR's UDP detector and collaborative renderer end to end.

    Streams clips from WebDataset shards (written by `conrdata synth` or
    `conrdata pack-drawn`), picks m reference views and one target per clip,
    and optimises L_udp, L_mask, L_cons, L_photo and L_vgg (paper Eq. 2-5).
    The resolved config goes to RUN_DIR/config.yaml; checkpoints to
    RUN_DIR/checkpoints/{step-NNNNNNN,latest}.pt; TensorBoard to
    RUN_DIR/tensorboard; one JSON line per log step to RUN_DIR/log.jsonl.

    \b
    Examples:
      conrmodel train --shards 'out/shards/train-{000000..000009}.tar' --out run/ --preset tiny --steps 2000
      conrmodel train --shards out/ --out run/ --resume            # continue after a preemption
      torchrun --nproc-per-node 4 -m conrmodel train --shards 'out/shards/train-{000000..000099}.tar' \\
          --val-shards 'out/shards/val-{000000..000003}.tar' --out run/ --preset paper
    """
    from conrmodel.train.loop import resolve_config, train

    sets = list(overrides)
    if steps is not None:
        sets.append(f"optim.steps={steps}")
    if seed is not None:
        sets.append(f"train.seed={seed}")
    if device is not None:
        sets.append(f"train.device={device}")
    if backgrounds is not None:
        sets.append(f"data.background_dir={backgrounds}")
    if vgg_weights is not None:
        sets.append(f"loss.vgg_weights={vgg_weights}")
    cfg, ckpt = resolve_config(run_dir, preset, config_file, sets, resume=resume)
    summary = train(
        cfg,
        shards,
        run_dir,
        val_shards=val_shards,
        checkpoint=ckpt,
        stop_at=stop_at,
        progress=not no_progress,
    )
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        last = summary.get("last", {})
        click.echo(
            f"trained to step {summary['step']} of {summary['steps']} "
            f"({summary.get('steps_this_run', 0)} steps this run, {summary.get('it_per_s', 0):.2f} it/s, "
            f"loader {100 * summary.get('data_share', 0):.0f}% of step time)"
        )
        if last:
            click.echo("last losses: " + json.dumps({k: round(v, 5) for k, v in last.items()}))
        click.echo(f"checkpoint: {summary.get('checkpoint')}")
