from kfkit.cli import main

main()
