"""hub3d's SAM-3D adapter, env recipe and stand-in against the real upstream source (cf06676).

Both sides are read from their files: upstream's by parsing (it needs CUDA packages to import),
hub3d's from its own code (the adapter's AST, run_flags, the probe's lists, the recipe's dry run),
so a change on either side that breaks the contract fails here. Parsing only: ~2 s.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from hub3d.models import sam3d_probe
from hub3d.models.sam3d import SAM3DParams, run_flags
from tests.sam3d_recipe import fake_tools, run_recipe, steps
from tests.upstream import sam3d_src as up

pytestmark = pytest.mark.upstream

HUB3D = up.REPO / "hub3d"
STANDIN = up.REPO / "tests" / "standins" / "sam3d" / "notebook" / "inference.py"
STANDINS = up.REPO / "tests" / "standins"
PIPELINE = "sam3d_objects/pipeline/inference_pipeline.py"
POINTMAP = "sam3d_objects/pipeline/inference_pipeline_pointmap.py"
POSTPROCESS = "sam3d_objects/model/backbone/tdfy_dit/utils/postprocessing_utils.py"
RENDER = "sam3d_objects/model/backbone/tdfy_dit/renderers/gaussian_render.py"
GAUSSIAN = "sam3d_objects/model/backbone/tdfy_dit/representations/gaussian/gaussian_model.py"
COMBOS = [SAM3DParams(output_format=f, with_texture=t) for f in ("glb", "ply")
          for t in (False, True)]


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not up.ARCHIVE.is_file():  # the tier must run: a missing archive is an error, not a skip
        pytest.fail(f"the SAM-3D upstream archive is not at {up.ARCHIVE}: the checkout needs "
                    "../shared/upstream beside it (see its README.md)")
    return up.extract(tmp_path_factory.mktemp("sam3d-src"))


@pytest.fixture(scope="module")
def adapter() -> ast.Module:
    return up.parse(HUB3D / "models" / "sam3d.py")


def _method_call(tree: ast.AST, owner: str, name: str) -> ast.Call:
    """The single call `<owner>.<name>(…)` (owner as written, e.g. self.pipeline)."""
    [call] = [c for c in up.calls(tree, name) if isinstance(c.func, ast.Attribute)
              and ast.unparse(c.func.value) == owner]
    return call


def test_inference_entry_is_what_hub3d_calls(src: Path, adapter: ast.Module) -> None:
    tree = up.parse(src / "notebook" / "inference.py")
    params = up.signature(tree, "Inference.__init__")
    [load] = up.calls(adapter, "inference_cls")
    assert len(load.args) == 1 and list(params)[0] == "config_file"
    for kw in load.keywords:
        assert kw.arg in params, f"Inference() has no parameter {kw.arg}"
        assert ast.literal_eval(kw.value) is False  # compile: torch.compile warm-up off
    attrs = {n.attr for n in ast.walk(adapter) if isinstance(n, ast.Attribute)
             and ast.unparse(n.value) == "self.inference"}
    init = up.find_def(tree, "Inference.__init__")
    assigned = {t.attr for n in ast.walk(init) if isinstance(n, ast.AnnAssign | ast.Assign)
                for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                if isinstance(t, ast.Attribute)}
    assert attrs and attrs <= assigned, attrs - assigned
    # It reads CONDA_PREFIX at import (and sets CUDA_HOME from it): the worker sets both.
    assert "os.environ['CUDA_HOME'] = os.environ['CONDA_PREFIX']" in ast.unparse(tree)
    # Upstream's allow-list of `_target_` roots, which the stand-in mirrors.
    assert "{'sam3d_objects', 'torch', 'torchvision', 'moge'}" in ast.unparse(tree)
    standin = ast.unparse(up.parse(STANDIN))
    assert "{'sam3d_objects', 'torch', 'torchvision', 'moge'}" in standin


def test_run_gets_every_flag_by_its_name(src: Path, adapter: ast.Module) -> None:
    params = up.signature(up.parse(src / POINTMAP), "InferencePipelinePointMap.run")
    call = _method_call(adapter, "self.pipeline", "run")
    positional = list(params)[:len(call.args)]
    assert positional == ["image", "mask", "seed"]
    assert [ast.unparse(a) for a in call.args] == ["rgba", "None", "params.seed"]
    assert [ast.unparse(k.value) for k in call.keywords if k.arg is None] == ["flags"]
    for p in COMBOS:  # every flag explicit: no upstream default is relied on
        assert set(run_flags(p)) == set(params) - set(positional), p


def test_standin_run_has_upstreams_signature_and_defaults(src: Path) -> None:
    real = up.signature(up.parse(src / POINTMAP), "InferencePipelinePointMap.run")
    assert up.signature(up.parse(STANDIN), "InferencePipelinePointMap.run") == real
    assert up.signature(up.parse(STANDIN), "Inference.__init__") == up.signature(
        up.parse(src / "notebook" / "inference.py"), "Inference.__init__")


def _vertex_colour_test(to_glb: ast.AST) -> ast.expr:
    [test] = [n.test for n in ast.walk(to_glb) if isinstance(n, ast.If)
              and "use_vertex_color" in ast.unparse(n.test)]
    return test


def test_to_glb_flag_combinations_give_what_hub3d_promises(src: Path) -> None:
    """The flags travel run → postprocess_slat_output → to_glb under the same names; with
    hub3d's flags to_glb takes its vertex-colour branch, or bakes a texture."""
    pointmap = up.parse(src / POINTMAP)
    [post_call] = up.calls(up.find_def(pointmap, "InferencePipelinePointMap.run"),
                           "postprocess_slat_output")
    post = up.signature(up.parse(src / PIPELINE), "InferencePipeline.postprocess_slat_output")
    assert [ast.unparse(a) for a in post_call.args] == list(post)
    [to_glb_call] = up.calls(up.parse(src / PIPELINE), "to_glb")
    passed = {k.arg: ast.unparse(k.value) for k in to_glb_call.keywords}
    flags = ("with_mesh_postprocess", "with_texture_baking", "use_vertex_color")
    assert all(passed[f] == f for f in flags)
    to_glb = up.find_def(up.parse(src / POSTPROCESS), "to_glb")
    assert set(flags) <= set(up.signature(up.parse(src / POSTPROCESS), "to_glb"))
    vertex_colour = compile(ast.Expression(_vertex_colour_test(to_glb)), "to_glb", "eval")
    for p in COMBOS:
        given = {f: run_flags(p)[f] for f in flags}
        textured = p.output_format == "glb" and p.with_texture
        assert eval(vertex_colour, {}, given) is (not textured), (p, given)
        assert given["with_texture_baking"] is textured


def _upstream_output_keys(src: Path) -> set[str]:
    pointmap, pipeline = up.parse(src / POINTMAP), up.parse(src / PIPELINE)
    run = up.find_def(pointmap, "InferencePipelinePointMap.run")
    [final] = [n.value for n in ast.walk(run) if isinstance(n, ast.Return)
               and isinstance(n.value, ast.Dict) and None in n.value.keys
               and "pointmap_colors" in up.dict_keys(n.value)
               and len([k for k in n.value.keys if k is None]) == 2]
    keys = up.dict_keys(final)
    keys |= up.stored_keys(up.find_def(pipeline, "InferencePipeline.postprocess_slat_output"),
                           "outputs")
    keys |= up.stored_keys(up.find_def(pipeline, "InferencePipeline.decode_slat"), "ret")
    keys |= up.stored_keys(up.find_def(pipeline, "InferencePipeline.sample_sparse_structure"),
                           "return_dict")
    decoder = up.parse(src / "sam3d_objects/pipeline/inference_utils.py")
    keys |= {k for n in ast.walk(decoder) if isinstance(n, ast.Return)
             and isinstance(n.value, ast.Dict) for k in up.dict_keys(n.value)
             if "rotation" in up.dict_keys(n.value)}
    return keys


def _adapter_output_keys(adapter: ast.Module) -> set[str]:
    gets = {c.args[0].value for c in up.calls(adapter, "get")
            if ast.unparse(c.func) == "out.get" and isinstance(c.args[0], ast.Constant)}
    pose = up.find_def(adapter, "_pose")
    loops = {e.value for n in ast.walk(pose) if isinstance(n, ast.For)
             and isinstance(n.iter, ast.Tuple) for e in n.iter.elts}
    return gets | loops


def test_output_keys_hub3d_reads_are_ones_upstream_returns(src: Path,
                                                           adapter: ast.Module) -> None:
    real = _upstream_output_keys(src)
    ours = _adapter_output_keys(adapter)
    assert ours == {"gs", "glb", "rotation", "translation", "scale"}
    assert ours <= real, ours - real
    gaussian = up.parse(src / GAUSSIAN)
    assert list(up.signature(gaussian, "Gaussian.save_ply")) == ["path"]
    assert isinstance(up.find_def(gaussian, "Gaussian.get_xyz"), ast.FunctionDef)


def test_standin_returns_upstreams_keys_and_quaternion(src: Path) -> None:
    real = _upstream_output_keys(src)
    run = up.find_def(up.parse(STANDIN), "InferencePipelinePointMap.run")
    [returned] = [n.value for n in ast.walk(run) if isinstance(n, ast.Return)
                  and isinstance(n.value, ast.Dict)]
    keys = up.dict_keys(returned)
    assert keys <= real, keys - real
    assert {"mesh", "gaussian", "pointmap", "pointmap_colors", "gs", "glb", "rotation",
            "translation", "scale"} <= keys
    # upstream's identity pose (estimate_plane) shows the shapes: rotation (1, 4) w x y z
    plane = up.find_def(up.parse(src / POINTMAP), "InferencePipelinePointMap.estimate_plane")
    [pose] = [n.value for n in ast.walk(plane) if isinstance(n, ast.Return)]
    assert isinstance(pose, ast.Dict)
    ours = dict(zip([k.value for k in returned.keys if isinstance(k, ast.Constant)],
                    [v for k, v in zip(returned.keys, returned.values, strict=True) if k],
                    strict=True))
    for key in ("rotation", "translation", "scale"):
        theirs = next(v for k, v in zip(pose.keys, pose.values, strict=True)
                      if isinstance(k, ast.Constant) and k.value == key)
        assert _shape(ours[key]) == _shape(theirs), key


def _shape(node: ast.expr) -> tuple[int, ...]:
    """(rows, cols) of `torch.tensor([[…]])`, `np.array([[…]])`, `np.zeros((1, 3))` …"""
    assert isinstance(node, ast.Call), ast.unparse(node)
    value: Any = ast.literal_eval(node.args[0])
    if ast.unparse(node.func) in ("np.zeros", "np.ones"):
        return tuple(value)
    return (len(value), len(value[0]))


def test_rasterizer_check_is_the_difference_between_the_variants(src: Path) -> None:
    [call] = up.calls(up.parse(src / RENDER), "GaussianRasterizationSettings")
    upstream_kw = {k.arg for k in call.keywords}

    def fields(folder: str) -> set[str]:
        tree = up.parse(STANDINS / folder / "diff_gaussian_rasterization" / "__init__.py")
        cls = up.find_def(tree, "GaussianRasterizationSettings")
        return {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign)
                and isinstance(n.target, ast.Name)}

    assert upstream_kw <= fields("texture_libs")  # the mip-splatting stand-in takes them all
    assert upstream_kw - fields("rasterizer_graphdeco") == set(sam3d_probe.MIP_RASTERIZER_FIELDS)
    render = ast.unparse(up.parse(src / RENDER))
    assert "from diff_gaussian_rasterization import" in render
    assert "import nvdiffrast.torch as dr" in ast.unparse(up.parse(src / POSTPROCESS))
    assert set(sam3d_probe.TEXTURE_MODULES) == {"nvdiffrast.torch", sam3d_probe.RASTERIZER}


def test_flash_attn_cards_are_upstreams(src: Path) -> None:
    fn = up.find_def(up.parse(src / PIPELINE), "set_attention_backend")
    [test] = [n.test for n in ast.walk(fn) if isinstance(n, ast.If)
              and "ATTN_BACKEND" in ast.unparse(n.body)]
    names = {c.value for c in ast.walk(test) if isinstance(c, ast.Constant)}
    assert names == set(sam3d_probe.FLASH_ATTN_CARDS)
    assert "flash_attn" in up.import_closure(src, "notebook/inference.py").conditional


def test_probe_imports_everything_inference_py_needs(src: Path) -> None:
    closure = up.import_closure(src, "notebook/inference.py")
    assert len(closure.files) > 50  # the pipeline, its models and utils, not one file
    env = set(sam3d_probe.ENV_MODULES)
    assert closure.top <= env, closure.top - env
    switchable = {"flash_attn", *sam3d_probe.NOT_IMPORTED_BY_DEFAULT}
    assert closure.conditional <= env | switchable, closure.conditional - env - switchable
    assert closure.optional <= env | switchable, closure.optional - env - switchable
    assert env <= closure.all, env - closure.all  # nothing stale in hub3d's list


def _setup_md_installs(src: Path) -> tuple[list[str], dict[str, str]]:
    text = (src / "doc" / "setup.md").read_text()
    order = re.findall(r"pip install -e '\.\[(\w+)\]'", text)
    exports = dict(re.findall(r'export (\w+)="([^"]+)"', text))
    return order, exports


def test_recipe_installs_the_needed_extras_in_upstreams_order(src: Path,
                                                            tmp_path: Path) -> None:
    order, exports = _setup_md_installs(src)
    assert order == ["dev", "p3d", "inference"]
    closure = up.import_closure(src, "notebook/inference.py").all
    needed = {name for name, reqs in up.extras(src).items()
              if up.requirement_names(reqs) & closure}
    assert {"p3d", "inference"} <= needed
    tools = fake_tools(tmp_path / "bin", micromamba="sam3d/micromamba-version.txt",
                       nvidia_smi="sam3d/nvidia-smi-query-h100.csv")
    out = run_recipe(tmp_path, "--src", str(src), tools=tools)
    assert out.returncode == 0, out.stderr
    cmds = steps(out.stdout)
    installs = {m.group(1): c for c in cmds
                if (m := re.search(rf"pip install -e {re.escape(str(src))}\[(\w+)\]$", c))}
    assert list(installs) == order and needed <= set(installs)
    for extra, cmd in installs.items():
        assert f"PIP_EXTRA_INDEX_URL={exports['PIP_EXTRA_INDEX_URL']} " in cmd
        assert (f"PIP_FIND_LINKS={exports['PIP_FIND_LINKS']} " in cmd) == (extra == "inference")
    env_file = src / "environments" / "default.yml"
    assert any(c.endswith(f"create -y -p {tmp_path / 'env'} -f {env_file}") for c in cmds)
    assert any(c.endswith(f"{src}/patching/hydra") for c in cmds)
    yml = env_file.read_text()  # what the env brings, that the builds rely on
    for pin in ("python=3.11.0", "gcc=12.4.0", "gxx=12.4.0", "cuda-nvcc=12.1", "setuptools="):
        assert f"- {pin}" in yml, pin
    assert cmds[-1].endswith("hub3d/models/sam3d_probe.py check NVIDIA H100 80GB HBM3")


def test_checkpoint_layout_and_dino_defaults(src: Path) -> None:
    setup = (src / "doc" / "setup.md").read_text()
    assert "TAG=hf" in setup and "mv checkpoints/${TAG}-download/checkpoints checkpoints/${TAG}" \
        in setup  # the HF repo's checkpoints/ folder ends up as checkpoints/hf
    from hub3d.models import sam3d_weights as weights

    assert weights.WEIGHTS.default_in_source == ("HUB3D_SAM3D_SRC", "checkpoints/hf")
    assert weights.WEIGHTS.plan[0].patterns == ("checkpoints/*",)
    dino = up.parse(src / "sam3d_objects/model/backbone/dit/embedder/dino.py")
    params = up.signature(dino, "Dino.__init__")
    module, _, cls = weights.DINO_TARGET.rpartition(".")
    assert (src / (module.replace(".", "/") + ".py")).samefile(
        src / "sam3d_objects/model/backbone/dit/embedder/dino.py") and cls == "Dino"
    assert (params["repo_or_dir"], params["dino_model"]) == weights.DINO_DEFAULTS


def test_doctor_names_the_extra_that_brings_each_module(src: Path) -> None:
    files = up.extras(src)
    for module, extra in sam3d_probe.EXTRA_OF.items():
        assert module in up.requirement_names(files[extra]), (module, extra)
    imported = up.import_closure(src, "notebook/inference.py").all
    for extra in ("p3d", "inference"):  # every imported module of those extras is mapped
        for name in up.requirement_names(files[extra]) & imported:
            assert sam3d_probe.EXTRA_OF.get(name) == extra, name
