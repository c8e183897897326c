from mit_annotator.pipeline.cli import main

raise SystemExit(main())
