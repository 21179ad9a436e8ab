from tracehive.cli.main import main

main()
