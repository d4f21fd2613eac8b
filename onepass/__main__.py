from onepass.cli import main

main()
