from mdr_reporting.cli.main import main

main()
