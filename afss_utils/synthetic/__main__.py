"""``python -m afss_utils.synthetic``: see :func:`afss_utils.synthetic.dataset.main`."""

from afss_utils.synthetic.dataset import main

if __name__ == "__main__":  # worker processes started by "spawn" re-import this as __mp_main__
    raise SystemExit(main())
