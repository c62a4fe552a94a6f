"""Stand-in for modules/scripts.py: the `Script` base class and the argument objects passed to its hooks."""

from __future__ import annotations

import re

from modules import paths

AlwaysVisible = object()


class PostSampleArgs:
    def __init__(self, samples):
        self.samples = samples


class PostprocessImageArgs:
    def __init__(self, image):
        self.image = image


class PostprocessBatchListArgs:
    def __init__(self, images):
        self.images = images


class Script:
    name = None
    section = None
    filename = None
    args_from = None
    args_to = None
    alwayson = False
    is_txt2img = False
    is_img2img = False
    tabname = None
    group = None
    create_group = True
    infotext_fields = None
    paste_field_names = None
    api_info = None
    setup_for_ui_only = False
    controls = None

    def title(self):
        raise NotImplementedError()

    def ui(self, is_img2img):
        pass

    def show(self, is_img2img):
        return True

    def run(self, p, *args):
        pass

    def setup(self, p, *args):
        pass

    def before_process(self, p, *args):
        pass

    def process(self, p, *args):
        pass

    def before_process_batch(self, p, *args, **kwargs):
        pass

    def process_batch(self, p, *args, **kwargs):
        pass

    def process_before_every_sampling(self, p, *args, **kwargs):
        pass

    def postprocess_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch_list(self, p, pp: PostprocessBatchListArgs, *args, **kwargs):
        pass

    def post_sample(self, p, ps: PostSampleArgs, *args):
        pass

    def postprocess_image(self, p, pp: PostprocessImageArgs, *args):
        pass

    def postprocess_image_after_composite(self, p, pp: PostprocessImageArgs, *args):
        pass

    def postprocess(self, p, processed, *args):
        pass

    def before_hr(self, p, *args):
        pass

    def describe(self):
        return ""

    def elem_id(self, item_id):
        need_tabname = self.show(True) == self.show(False)
        tabkind = "img2img" if self.is_img2img else "txt2img"
        tabname = f"{tabkind}_" if need_tabname else ""
        title = re.sub(r"[^a-z_0-9]", "", re.sub(r"\s", "_", self.title().lower()))
        return f"script_{tabname}{title}_{item_id}"


current_basedir = paths.script_path


def basedir() -> str:
    return current_basedir


class ScriptRunner:
    """The host's runner, reduced to what generation uses (A1111 1.10 modules/scripts.py).

    Every always-on hook loops over `alwayson_scripts`, gives each script its slice
    `p.script_args[script.args_from:script.args_to]`, and reports (never raises) a script's exception.
    """

    def __init__(self):
        self.scripts = []
        self.selectable_scripts = []
        self.alwayson_scripts = []
        self.titles = []
        self.infotext_fields = []
        self.paste_field_names = []
        self.inputs = [None]

    def _call(self, hook, p, *args, **kwargs):
        from modules import errors

        for script in self.alwayson_scripts:
            try:
                script_args = p.script_args[script.args_from:script.args_to]
                getattr(script, hook)(p, *args, *script_args, **kwargs)
            except Exception:  # noqa: BLE001 - the host reports hook errors and goes on
                errors.report(f"Error running {hook}: {script.filename}", exc_info=True)

    def before_process(self, p):
        self._call("before_process", p)

    def process(self, p):
        self._call("process", p)

    def before_process_batch(self, p, **kwargs):
        self._call("before_process_batch", p, **kwargs)

    def process_batch(self, p, **kwargs):
        self._call("process_batch", p, **kwargs)

    def postprocess(self, p, processed):
        self._call("postprocess", p, processed)

    def process_before_every_sampling(self, p, **kwargs):
        self._call("process_before_every_sampling", p, **kwargs)

    def postprocess_batch(self, p, images, **kwargs):
        self._call("postprocess_batch", p, images=images, **kwargs)

    def postprocess_batch_list(self, p, pp, **kwargs):
        self._call("postprocess_batch_list", p, pp, **kwargs)

    def post_sample(self, p, ps):
        self._call("post_sample", p, ps)

    def postprocess_image(self, p, pp):
        self._call("postprocess_image", p, pp)

    def postprocess_image_after_composite(self, p, pp):
        self._call("postprocess_image_after_composite", p, pp)


scripts_txt2img = None  # the host's runners; tests that need one assign a ScriptRunner
scripts_img2img = None
